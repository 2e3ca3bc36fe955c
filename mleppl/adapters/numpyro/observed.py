"""Observed data: the kind of data a site holds (continuous, count, binary, categorical,
ordinal, factor; censoring), the user's name for it, its checks (shape, support,
finiteness), its number of terms and its per-observation log-likelihood terms.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import constraints

from ...core import hostview
from .masks import _site_weight, global_mask, site_mask


def base_distribution(fn):
    """The distribution under NumPyro's wrappers (expand, mask, independent)."""
    from numpyro.distributions.distribution import ExpandedDistribution, Independent, MaskedDistribution

    while isinstance(fn, (ExpandedDistribution, Independent, MaskedDistribution)):
        fn = fn.base_dist
    return fn


def observed_kind(tr: dict, name: str) -> str:
    """Data type of an observed site: ``continuous``, ``count``, ``binary``,
    ``categorical``, ``ordinal`` or ``factor`` (a ``numpyro.factor`` term)."""
    from numpyro.distributions import Unit

    fn = base_distribution(tr[name]["fn"])
    if isinstance(fn, Unit):
        return "factor"
    support = fn.support
    if not support.is_discrete:
        return "continuous"
    cls = type(fn).__name__
    if cls.startswith("Ordered"):
        return "ordinal"
    if cls.startswith("Categorical") or cls.startswith("DiscreteUniform"):
        return "categorical"
    if support is constraints.boolean or cls.startswith("Bernoulli"):
        return "binary"
    return "count"


def display_name(tr: dict, name: str) -> str:
    """The user's name for an observed site: ``y`` for NumPyro's ``y_observed`` (obs_mask)."""
    if name.endswith("_observed"):
        base = name[: -len("_observed")]
        if base in tr and tr[base]["type"] == "deterministic" and f"{base}_unobserved" in tr:
            return base
    return name


def censoring(tr: dict, name: str) -> tuple[str, np.ndarray] | None:
    """``("right" | "left", indicator)`` for a site of NumPyro's ``RightCensoredDistribution`` /
    ``LeftCensoredDistribution`` (indicator True where the value is a censoring time, over
    the batch shape); None otherwise."""
    from numpyro.distributions import LeftCensoredDistribution, RightCensoredDistribution

    fn = base_distribution(tr[name]["fn"])
    for cls, side in ((RightCensoredDistribution, "right"), (LeftCensoredDistribution, "left")):
        if isinstance(fn, cls):
            shape = tuple(tr[name]["fn"].batch_shape)
            flag = np.broadcast_to(np.asarray(jax.device_get(fn.censored)) != 0, shape)
            return side, np.array(flag)
    return None


def observed_count(tr: dict, name: str) -> int:
    """Number of unmasked log-likelihood terms of an observed site (NumPy, no compile)."""
    site = tr[name]
    if np.size(site["value"]) == 0 and observed_kind(tr, name) != "factor":
        return 0
    shape = tuple(site["fn"].batch_shape)
    scale = site.get("scale")
    weight_zero = scale is not None and hostview.count_true(lambda xp, s: s != 0, scale) == 0
    if weight_zero:
        return 0
    mask = site_mask(site, xp=jnp if global_mask(site) else np)
    if mask is not None:
        return hostview.count_true(lambda xp, m: xp.broadcast_to(m, shape), mask)
    return int(math.prod(shape))


def loglik_terms(tr: dict, observed: tuple[str, ...]) -> dict[str, tuple[jax.Array, jax.Array]]:
    """Per-observation log-likelihood terms of the observed sites of a trace.

    Returns, for each observed site, ``(terms, weight)`` over the site's batch
    shape: ``terms`` is ``log p(y | θ)`` times the site's scale with masked
    entries set to zero; ``weight`` is the mask as 0/1 times the scale.
    ``terms.sum()`` over all sites is exactly NumPyro's log-density of the
    observed part.
    """
    out = {}
    for name in observed:
        site = tr[name]
        fn = site["fn"]
        lp = fn.log_prob(site["value"])
        weight = _site_weight(site, jnp.shape(lp), lp.dtype, jnp)
        out[name] = (jnp.where(weight != 0, lp, 0.0) * weight, weight)
    return out


def observed_shape_problem(tr: dict, name: str) -> str | None:
    """A message if the data at an observed site do not match its distribution's shape."""
    site = tr[name]
    fn = site["fn"]
    expected = tuple(fn.batch_shape) + tuple(fn.event_shape)
    got = tuple(jnp.shape(site["value"]))
    if got != expected:
        return (
            f"observed site '{name}': expected data of shape {expected} (from its "
            f"distribution {type(fn).__name__} and its plates), got shape {got}"
        )
    return None


def observed_outside_support(tr: dict, name: str) -> str | None:
    """A description of unmasked data outside the site's support, or None (counted where the
    rows are for a global array of several processes)."""
    site = tr[name]
    fn = site["fn"]
    value = site["value"]
    base = fn
    while hasattr(base, "base_dist"):  # Expanded / Masked / Independent wrappers
        base = base.base_dist
    if hostview.any_global(value) or global_mask(site):
        mask = site_mask(site, xp=jnp)

        def outside(xp, v, *m):
            inside = fn.support(v)
            if m:
                inside = inside | ~xp.broadcast_to(m[0], inside.shape)
            return ~inside

        try:
            n_bad = hostview.count_true(outside, value, *(() if mask is None else (mask,)))
        except Exception:  # noqa: BLE001 - a support that cannot be checked is not checked
            return None
        return None if n_bad == 0 else f"got {n_bad} value(s) outside {fn.support} for {type(base).__name__}"
    try:
        inside = np.asarray(fn.support(value))
    except Exception:  # noqa: BLE001 - a support that cannot be checked is not checked
        return None
    mask = site_mask(site, xp=np)
    if mask is not None:
        inside = inside | ~np.broadcast_to(mask, inside.shape)
    if inside.all():
        return None
    v = np.asarray(value)
    bad = ~inside
    example = v[bad] if bad.shape == v.shape[: bad.ndim] else v
    return (
        f"got {int(bad.sum())} value(s) outside {fn.support} (e.g. {np.ravel(example)[:3].tolist()}) "
        f"for {type(base).__name__}"
    )


def observed_nonfinite(tr: dict, name: str) -> int:
    """Number of non-finite data values at an observed site that are not masked out (counted
    where the rows are for a global array of several processes)."""
    site = tr[name]
    value = site["value"]
    if not np.issubdtype(hostview.dtype_of(value), np.number):
        return 0
    fn = site["fn"]
    mask = site_mask(site, xp=jnp if hostview.any_global(value) or global_mask(site) else np)

    def bad(xp, v, *m):
        out = ~xp.isfinite(v)
        if m:
            mm = xp.asarray(m[0])
            mm = xp.broadcast_to(mm.reshape(mm.shape + (1,) * fn.event_dim), v.shape) if mm.ndim else mm
            out = out & mm.astype(bool)
        return out

    return hostview.count_true(bad, value, *(() if mask is None else (mask,)))
