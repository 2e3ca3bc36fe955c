"""Masks and weights of observed sites.

``handlers.mask`` / ``obs_mask`` read off a trace (in NumPy at bind time, in JAX when
traced), the weight of each term (mask × scale), and the row mask that makes the padding
rows of a row bucket add nothing to the log-density.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from numpyro.primitives import Messenger

from ...core import hostview


def site_mask(site: dict, xp=jnp):
    """The site's mask as a boolean array over its batch shape, or None.

    NumPyro 0.22 implements ``handlers.mask``/``obs_mask`` by wrapping the
    distribution in ``MaskedDistribution``; older versions set ``msg["mask"]``.
    Both are honoured.
    """
    from numpyro.distributions.distribution import MaskedDistribution

    fn = site["fn"]
    masks = []
    if site.get("mask") is not None:
        masks.append(site["mask"])
    while isinstance(fn, MaskedDistribution):
        masks.append(fn._mask)
        fn = fn.base_dist
    if not masks:
        return None
    shape = tuple(site["fn"].batch_shape)
    out = xp.ones(shape, dtype=bool)
    for m in masks:
        out = out & xp.broadcast_to(xp.asarray(m, dtype=bool), shape)
    return out


def global_mask(site: dict) -> bool:
    """True if a mask of the site is a global array with rows on other processes (read
    without combining the masks)."""
    from numpyro.distributions.distribution import MaskedDistribution

    fn, leaves = site["fn"], [site.get("mask")]
    while isinstance(fn, MaskedDistribution):
        leaves.append(fn._mask)
        fn = fn.base_dist
    return hostview.any_global(*leaves)


def _site_weight(site: dict, shape: tuple, dtype, xp):
    """Mask (0/1) times scale over ``shape``, in ``xp`` (NumPy at bind time, JAX when traced)."""
    mask = site_mask(site, xp=xp)
    w = xp.ones(shape, dtype=dtype) if mask is None else xp.broadcast_to(xp.asarray(mask, dtype=dtype), shape)
    scale = site.get("scale")
    return w if scale is None else w * scale


def observation_weight(tr: dict, name: str) -> np.ndarray:
    """The site's weight over its batch shape, mask (0/1) times scale, in NumPy: the
    ``weight`` of :func:`loglik_terms` without evaluating any log-density (bind-time cost
    at 10⁴ rows: 1.4 ms that way)."""
    site = tr[name]
    shape = tuple(site["fn"].batch_shape)
    if global_mask(site) or hostview.any_global(site.get("scale")):
        return _site_weight(site, shape, jnp.float64, jnp)  # rows on other processes: kept there
    return np.array(_site_weight(site, shape, np.float64, np), dtype=np.float64)


def observation_mask(tr: dict, name: str) -> np.ndarray | None:
    """Boolean mask over the batch shape of an observed site (True = observed), or None.

    Combines ``handlers.mask``/``obs_mask`` (a ``MaskedDistribution`` or the
    site's ``mask`` entry) into one array; None when nothing is masked.
    """
    from numpyro.distributions.distribution import MaskedDistribution

    site = tr[name]
    fn = site["fn"]
    batch = tuple(fn.batch_shape)
    if global_mask(site):  # rows on other processes: kept there
        return site_mask(site, xp=jnp)
    m = np.ones(batch, dtype=bool)
    masked = False
    if site.get("mask") is not None:
        m = m & np.broadcast_to(np.asarray(site["mask"], dtype=bool), batch)
        masked = True
    while fn is not None:
        if isinstance(fn, MaskedDistribution) and not isinstance(fn._mask, bool):
            m = m & np.broadcast_to(np.asarray(fn._mask, dtype=bool), batch)
            masked = True
        elif isinstance(fn, MaskedDistribution) and fn._mask is False:
            m = np.zeros(batch, dtype=bool)
            masked = True
        fn = getattr(fn, "base_dist", None)
    return m if masked else None


class _RowMask(Messenger):
    """Mask the terms of every observed site in plate ``plate`` from row ``n_valid`` on.

    Padding rows (see :mod:`mleppl.fitting.buckets`) then add exactly nothing to the
    log-density: NumPyro's ``MaskedDistribution`` gives 0 there, its gradient 0.
    """

    def __init__(self, fn=None, plate: str = "", n_valid=None):
        self.plate = plate
        self.n_valid = n_valid
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample" or not msg["is_observed"]:
            return
        for frame in msg["cond_indep_stack"]:
            if frame.name == self.plate:
                rows = jnp.arange(frame.size) < self.n_valid
                msg["fn"] = msg["fn"].mask(rows.reshape((-1,) + (1,) * (-frame.dim - 1)))


def row_masked(model: Callable, plate: str, n_valid) -> Callable:
    """``model`` with its observed terms in ``plate`` masked from row ``n_valid`` on."""
    return _RowMask(model, plate=plate, n_valid=n_valid)
