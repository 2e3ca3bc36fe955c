"""What a site is: the typed description the adapter hands the rest of mleppl
(:class:`ObservedSite`, :class:`ModelSites`) and the readers of one site of a trace
(kinds, plate dimensions and axes, values, log-density, support bounds, a fixed or
origin value inside the support).

Vocabulary
----------
free site
    A latent continuous ``numpyro.sample`` site or a ``numpyro.param`` site:
    a parameter of the likelihood.
observed site
    A ``numpyro.sample`` site with ``obs=`` data; its log-density is the
    likelihood.
imputed site
    The ``<name>_unobserved`` site NumPyro creates for ``obs_mask``: it is
    neither data nor parameter. Its log-density is dropped (integrating out
    a missing observation multiplies the likelihood by one) and its value is
    held at a fixed point of the support.
deterministic site
    A ``numpyro.deterministic`` site: a derived quantity.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions.transforms import biject_to

from ...core.sites import Site


class ObservedSite(NamedTuple):
    """Static description of one observed site, read off the trace made with the data."""

    name: str  # the trace's name (``y_observed`` for obs_mask)
    label: str  # the user's name (``y``)
    kind: str  # continuous | count | binary | categorical | ordinal | factor
    value: np.ndarray
    batch_shape: tuple[int, ...]
    event_dim: int
    plates: tuple[tuple[str, int, int], ...]  # (plate, dim from the right of the batch shape, full size)
    dims: tuple[str | None, ...]  # plate name of each dimension of the value
    mask: np.ndarray | None  # True = observed, over the batch shape; None when nothing is masked
    weight: np.ndarray  # mask × scale over the batch shape (NumPyro's weight of each term)
    count: int  # unmasked log-likelihood terms
    censoring: tuple | None = None  # ("right" | "left", censored indicator over the batch shape)


class ModelSites(NamedTuple):
    """Static classification of a model's sites, from one trace with data."""

    free: tuple[Site, ...]
    observed: tuple[str, ...]
    data: tuple[ObservedSite, ...]  # one per observed site, same order
    deterministic: tuple[tuple[str, tuple[int, ...]], ...]
    imputed: tuple[tuple[str, Any], ...]  # (name, fixed value)
    plates: tuple[tuple[str, int], ...]  # (plate name, full size)
    dims: tuple[tuple[str, tuple[str | None, ...]], ...]  # plate dims of free and deterministic sites
    subsampled: tuple[str, ...]  # plates with subsample_size < size
    param_values: tuple[tuple[str, Any], ...]  # declared initial values of numpyro.param sites
    random: tuple[Site, ...] = ()  # sites integrated out (random=)
    random_plates: tuple = ()  # (site, ((plate, axis), ...)) for each random site
    discrete: tuple = ()  # (site, batch shape, number of values): discrete latents, summed out
    max_plate_nesting: int = 0
    # integrated sites with a flat density (REML's fixed effects, reml=): their priors dropped
    restricted: tuple[str, ...] = ()

    @property
    def discrete_likelihood(self) -> bool:
        """Every observed site has a discrete distribution (no factor terms): log L ≤ 0."""
        return bool(self.data) and all(
            o.kind in ("count", "binary", "categorical", "ordinal") for o in self.data
        )

    def observed_site(self, name: str) -> ObservedSite:
        for o in self.data:
            if o.name == name:
                return o
        raise KeyError(name)


def site_kinds(tr: dict) -> list[tuple[str, str]]:
    """``(name, kind)`` per site of a trace: ``latent``, ``observed``, ``param``, ``deterministic``, ``other``."""
    out = []
    for name, site in tr.items():
        if site["type"] == "sample":
            out.append((name, "observed" if site["is_observed"] else "latent"))
        elif site["type"] in ("param", "deterministic"):
            out.append((name, site["type"]))
        else:
            out.append((name, "other"))
    return out


def site_dims(tr: dict, name: str) -> tuple[str | None, ...]:
    """Plate name of each dimension of a site's value (None where no plate applies)."""
    site = tr[name]
    ndim = len(jnp.shape(site["value"]))
    event_dim = site["fn"].event_dim if site["type"] == "sample" else 0
    dims: list[str | None] = [None] * ndim
    for frame in site.get("cond_indep_stack", ()) or ():
        i = ndim - event_dim + frame.dim
        if 0 <= i < ndim:
            dims[i] = frame.name
    return tuple(dims)


def site_plate_axes(tr: dict, name: str) -> dict[str, int]:
    """``{plate: axis}``: which axis of the site's value each of its plates indexes."""
    site = tr[name]
    ndim = len(jnp.shape(site["value"]))
    event_dim = site["fn"].event_dim
    out = {}
    for frame in site.get("cond_indep_stack", ()) or ():
        i = ndim - event_dim + frame.dim
        if 0 <= i < ndim:
            out[frame.name] = i
    return out


def free_values(tr: dict, names) -> dict:
    """The values of the named sites in a trace."""
    return {name: tr[name]["value"] for name in names}


def site_log_prob(tr: dict, name: str) -> jax.Array:
    """The log-density of a latent site at its value in the trace, over its batch shape."""
    site = tr[name]
    return site["fn"].log_prob(site["value"])


def support_bounds(support, shape) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise lower and upper bounds of a support over ``shape`` (±inf where unbounded)."""
    lo = getattr(support, "lower_bound", -np.inf)
    hi = getattr(support, "upper_bound", np.inf)
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), shape).ravel()
    hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), shape).ravel()
    return lo, hi


def _fixed_point(support, shape):
    """A data-independent value inside ``support`` for an imputed site."""
    if support.is_discrete:
        return jnp.zeros(shape, dtype=jnp.result_type(int))
    t = biject_to(support)
    return t(jnp.zeros(t.inverse_shape(shape)))


def _origin_value(site):
    """Latent sample sites take the origin of their unconstrained space (no RNG)."""
    if site["type"] != "sample" or site["is_observed"]:
        return None
    fn = site["fn"]
    shape = (
        tuple(site["kwargs"].get("sample_shape", ()) or ()) + tuple(fn.batch_shape) + tuple(fn.event_shape)
    )
    if fn.support.is_discrete:
        return np.zeros(shape, dtype=np.int64)
    try:  # one small compiled program per support and shape, not one per eager operation
        return _origin_program(fn.support, shape)
    except Exception:  # noqa: BLE001 - a support that is not a pytree (a user's constraint)
        return _origin(fn.support, shape)


def _origin(support, shape):
    """``biject_to(support)`` at the origin of its unconstrained space."""
    t = biject_to(support)
    return t(jnp.zeros(t.inverse_shape(shape)))


# compiled: the bijection of a correlation Cholesky factor is ~50 eager operations, each
# compiled on its own in a fresh process (0.9 s of XLA compilation at a first fit with
# LKJCholesky), against one program here
_origin_program = jax.jit(_origin, static_argnums=1)


def log_abs_det_jacobian(sites: tuple[Site, ...], unconstrained: dict) -> jax.Array:
    """Σ over free sites of log|det ∂θ/∂z| at the unconstrained values (for approximate-posterior LOO)."""
    total = jnp.zeros(())
    for s in sites:
        u = unconstrained[s.name]
        total = total + jnp.sum(s.transform.log_abs_det_jacobian(u, s.transform(u)))
    return total
