"""The one adapter between mleppl and NumPyro's internals.

Everything that reads a NumPyro trace, swaps a distribution, or calls an
experimental helper of ``numpyro.infer.util`` lives here, so that a NumPyro
upgrade touches one file.

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

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.distributions import ImproperUniform, constraints
from numpyro.distributions.transforms import biject_to
from numpyro.infer.initialization import init_to_median, init_to_uniform
from numpyro.primitives import Messenger

__all__ = [
    "Site",
    "ModelSites",
    "classify_sites",
    "prior_free",
    "trace_model",
    "trace_with_values",
    "loglik_terms",
    "log_density",
    "initial_values",
]


class Site(NamedTuple):
    """Static description of one free site."""

    name: str
    kind: str  # "sample" or "param"
    shape: tuple[int, ...]  # constrained shape
    unconstrained_shape: tuple[int, ...]
    support: Any  # numpyro constraint
    transform: Any  # unconstrained -> constrained


class ModelSites(NamedTuple):
    """Static classification of a model's sites, from one trace with data."""

    free: tuple[Site, ...]
    observed: tuple[str, ...]
    deterministic: tuple[tuple[str, tuple[int, ...]], ...]
    imputed: tuple[tuple[str, Any], ...]  # (name, fixed value)
    plates: tuple[tuple[str, int], ...]  # (plate name, full size)


class _DropPriors(Messenger):
    """Replace the prior of each named free site with a flat density on its support.

    Plates and masks inside the model are applied before this (outer) handler, so
    ``fn.batch_shape`` already carries the plate dimensions. Imputed sites also
    get a flat density and a fixed value.
    """

    def __init__(self, fn=None, free=(), imputed=()):
        self.free = frozenset(free)
        self.imputed = dict(imputed)
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample" or msg["is_observed"]:
            return
        name = msg["name"]
        if name in self.free or name in self.imputed:
            fn = msg["fn"]
            msg["fn"] = ImproperUniform(fn.support, fn.batch_shape, fn.event_shape)
        if name in self.imputed and msg["value"] is None:
            msg["value"] = self.imputed[name]


def prior_free(model: Callable, sites: ModelSites) -> Callable:
    """The model with every prior dropped: flat densities on the free sites' supports.

    Observed sites are untouched, so the joint log-density of the returned model
    at any parameter value equals the log-likelihood there.
    """
    names = [s.name for s in sites.free if s.kind == "sample"]
    return _DropPriors(model, free=names, imputed=sites.imputed)


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
    t = biject_to(fn.support)
    return t(jnp.zeros(t.inverse_shape(shape)))


def trace_model(model: Callable, args: tuple, kwargs: dict, rng_key) -> dict:
    """Trace the original model once with the data.

    Latent sites are placed at the origin of their unconstrained space rather than
    sampled from their priors: no random-number kernels to compile, which makes a
    fresh process's first fit about half a second faster. A model that needs a
    random key of its own (``numpyro.prng_key()``) is traced again under ``seed``.
    """
    try:
        return handlers.trace(handlers.substitute(model, substitute_fn=_origin_value)).get_trace(
            *args, **kwargs
        )
    except Exception:  # noqa: BLE001 - any failure: retry the plain seeded way, which reports
        return handlers.trace(handlers.seed(model, rng_key)).get_trace(*args, **kwargs)


def trace_with_values(model: Callable, args: tuple, kwargs: dict, values: dict) -> dict:
    """Trace a model with the given constrained values substituted at their sites."""
    return handlers.trace(handlers.substitute(model, data=values)).get_trace(*args, **kwargs)


def _is_imputed(name: str, tr: dict) -> bool:
    """True for the ``<base>_unobserved`` site that ``obs_mask`` creates."""
    if not name.endswith("_unobserved"):
        return False
    base = name[: -len("_unobserved")]
    observed = tr.get(base + "_observed")
    det = tr.get(base)
    return (
        observed is not None
        and observed["type"] == "sample"
        and observed["is_observed"]
        and det is not None
        and det["type"] == "deterministic"
    )


def _fixed_point(support, shape):
    """A data-independent value inside ``support`` for an imputed site."""
    if support.is_discrete:
        return jnp.zeros(shape, dtype=jnp.result_type(int))
    t = biject_to(support)
    return t(jnp.zeros(t.inverse_shape(shape)))


def classify_sites(tr: dict) -> ModelSites:
    """Classify the sites of a trace made with the data.

    Raises
    ------
    ValueError
        For a discrete latent site (it must be marginalized) or a model with
        no observed site.
    """
    free, observed, det, imputed = [], [], [], []
    plates: dict[str, int] = {}
    masked_bases = set()
    for name, site in tr.items():
        for frame in site.get("cond_indep_stack", ()) or ():
            plates.setdefault(frame.name, int(frame.size))
        if site["type"] == "sample":
            fn = site["fn"]
            if site["is_observed"]:
                observed.append(name)
                continue
            shape = tuple(jnp.shape(site["value"]))
            if _is_imputed(name, tr):
                imputed.append((name, _fixed_point(fn.support, shape)))
                masked_bases.add(name[: -len("_unobserved")])
                continue
            if fn.support.is_discrete:
                raise ValueError(
                    f"site '{name}' is a discrete latent variable ({type(fn).__name__}); "
                    "expected continuous latent sites only: a discrete latent variable "
                    "cannot be point-estimated by gradients and must be marginalized "
                    "(sum it out in the model, e.g. with MixtureSameFamily)"
                )
            t = biject_to(fn.support)
            free.append(Site(name, "sample", shape, tuple(t.inverse_shape(shape)), fn.support, t))
        elif site["type"] == "param":
            constraint = site["kwargs"].get("constraint", constraints.real)
            shape = tuple(jnp.shape(site["value"]))
            t = biject_to(constraint)
            free.append(Site(name, "param", shape, tuple(t.inverse_shape(shape)), constraint, t))
        elif site["type"] == "deterministic":
            det.append((name, tuple(jnp.shape(site["value"]))))
    det = [(n, s) for n, s in det if n not in masked_bases]
    return ModelSites(tuple(free), tuple(observed), tuple(det), tuple(imputed), tuple(plates.items()))


def log_density(model: Callable, args: tuple, kwargs: dict, values: dict):
    """Joint log-density (scale and mask applied) and the trace, via NumPyro."""
    from numpyro.infer.util import log_density as _log_density

    return _log_density(model, args, kwargs, values)


def observed_count(tr: dict, name: str) -> int:
    """Number of unmasked log-likelihood terms of an observed site (NumPy, no compile)."""
    site = tr[name]
    if np.size(site["value"]) == 0:
        return 0
    mask = site_mask(site, xp=np)
    shape = tuple(site["fn"].batch_shape)
    weight_zero = site.get("scale") is not None and np.all(np.asarray(site["scale"]) == 0)
    if weight_zero:
        return 0
    return int(np.count_nonzero(mask)) if mask is not None else int(math.prod(shape))


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
        mask = site_mask(site)
        if mask is None:
            weight = jnp.ones(jnp.shape(lp))
        else:
            weight = jnp.broadcast_to(jnp.asarray(mask, dtype=lp.dtype), jnp.shape(lp))
        scale = site.get("scale")
        if scale is not None:
            weight = weight * scale
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


def display_name(tr: dict, name: str) -> str:
    """The user's name for an observed site: ``y`` for NumPyro's ``y_observed`` (obs_mask)."""
    if name.endswith("_observed"):
        base = name[: -len("_observed")]
        if base in tr and tr[base]["type"] == "deterministic" and f"{base}_unobserved" in tr:
            return base
    return name


def observed_outside_support(tr: dict, name: str) -> str | None:
    """A description of unmasked data outside the site's support, or None."""
    site = tr[name]
    fn = site["fn"]
    value = site["value"]
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
    base = fn
    while hasattr(base, "base_dist"):  # Expanded / Masked / Independent wrappers
        base = base.base_dist
    return (
        f"got {int(bad.sum())} value(s) outside {fn.support} (e.g. {np.ravel(example)[:3].tolist()}) "
        f"for {type(base).__name__}"
    )


def observed_nonfinite(tr: dict, name: str) -> int:
    """Number of non-finite data values at an observed site that are not masked out."""
    site = tr[name]
    value = np.asarray(site["value"])
    if not np.issubdtype(value.dtype, np.number):
        return 0
    bad = ~np.isfinite(value)
    mask = site_mask(site, xp=np)
    if mask is not None:
        fn = site["fn"]
        m = np.asarray(mask)
        m = np.broadcast_to(m.reshape(m.shape + (1,) * fn.event_dim), value.shape) if m.ndim else m
        bad = bad & m.astype(bool)
    return int(np.sum(bad))


def initial_values(model: Callable, args: tuple, kwargs: dict, rng_key, attempt: int) -> dict:
    """Constrained start values for the free sites of the ORIGINAL model.

    Attempt 0 uses the prior median; later attempts draw uniformly in
    (-2, 2) on the unconstrained scale (NumPyro's default for MCMC).
    ``numpyro.param`` sites keep their declared initial value.
    """
    strategy = init_to_median(num_samples=15) if attempt == 0 else init_to_uniform(radius=2)
    key = jax.random.fold_in(rng_key, attempt)
    seeded = handlers.seed(model, key)
    tr = handlers.trace(handlers.substitute(seeded, substitute_fn=strategy)).get_trace(*args, **kwargs)
    return tr


# --------------------------------------------------------------------------
# Uncertainty helpers (robust covariances, bootstrap): additive, read-only.


def site_plates(tr: dict, name: str) -> tuple[tuple[int, ...], dict[str, tuple[int, int]]]:
    """Batch shape of an observed site's log-density and its plates ``{name: (dim, size)}``.

    ``dim`` is the plate's (negative) dimension counted from the right of the
    batch shape; ``size`` is the plate's full size (a subsampled plate has a
    smaller extent in the batch shape).
    """
    site = tr[name]
    frames = site.get("cond_indep_stack", ()) or ()
    return tuple(site["fn"].batch_shape), {f.name: (int(f.dim), int(f.size)) for f in frames}


class _ReplaceObserved(Messenger):
    """Give the named observed sites new values (same shapes) without touching the model."""

    def __init__(self, fn=None, values=None):
        self.values = dict(values or {})
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["is_observed"] and msg["name"] in self.values:
            msg["value"] = self.values[msg["name"]]


def replace_observed(model: Callable, values: dict) -> Callable:
    """The model with the data at the named observed sites replaced by ``values``."""
    return _ReplaceObserved(model, values=values)


class _Unobserve(Messenger):
    """Turn the named observed sites into latent sites, so that they are simulated."""

    def __init__(self, fn=None, names=()):
        self.names = frozenset(names)
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["is_observed"] and msg["name"] in self.names:
            msg["value"] = None
            msg["is_observed"] = False


def simulate_observed(
    model: Callable, args: tuple, kwargs: dict, params: dict, observed: tuple, rng_key, num_samples: int
) -> dict:
    """Draws of the observed sites from the model at fixed parameters, via ``Predictive``.

    Returns ``{site: array of shape (num_samples, *site shape)}``.
    """
    from numpyro.infer import Predictive

    pred = Predictive(
        _Unobserve(model, names=observed),
        params=params,
        num_samples=num_samples,
        return_sites=list(observed),
        batch_ndims=1,
    )
    return pred(rng_key, *args, **kwargs)


# --------------------------------------------------------------------------
# Prediction and ArviZ export (issue 4): small additive helpers.


def observation_mask(tr: dict, name: str) -> np.ndarray | None:
    """Boolean mask over the batch shape of an observed site (True = observed), or None.

    Combines ``handlers.mask``/``obs_mask`` (a ``MaskedDistribution`` or the
    site's ``mask`` entry) into one array; None when nothing is masked.
    """
    from numpyro.distributions.distribution import MaskedDistribution

    site = tr[name]
    fn = site["fn"]
    batch = tuple(fn.batch_shape)
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


def subsampled_plates(tr: dict) -> list[str]:
    """Names of the plates that subsample (``plate(..., subsample_size=b)`` with b < size)."""
    out = []
    for name, site in tr.items():
        if site["type"] == "plate":
            size, sub = site["args"][0], site["args"][1]
            if sub is not None and int(sub) != int(size):
                out.append(name)
    return out


def replicate_observed(tr: dict, observed: tuple[str, ...], rng_key) -> dict[str, jax.Array]:
    """One draw of each observed site from its distribution in the trace (the likelihood at θ)."""
    out = {}
    for i, name in enumerate(observed):
        out[name] = tr[name]["fn"].sample(jax.random.fold_in(rng_key, i))
    return out


def log_abs_det_jacobian(sites: tuple[Site, ...], unconstrained: dict) -> jax.Array:
    """Σ over free sites of log|det ∂θ/∂z| at the unconstrained values (for approximate-posterior LOO)."""
    total = jnp.zeros(())
    for s in sites:
        u = unconstrained[s.name]
        total = total + jnp.sum(s.transform.log_abs_det_jacobian(u, s.transform(u)))
    return total


def predictive(
    model: Callable, rng_key, args: tuple, kwargs: dict, *, samples=None, params=None, num_samples=None
):
    """``numpyro.infer.Predictive``: draws of the non-fixed sites given parameter values.

    ``samples`` (leading draw axis) substitutes one parameter set per draw;
    ``params`` fixes one parameter set for all ``num_samples`` draws.
    """
    from numpyro.infer import Predictive

    if samples is not None:
        pred = Predictive(model, posterior_samples=samples, batch_ndims=1)
    else:
        pred = Predictive(model, params=params, num_samples=num_samples, batch_ndims=1)
    return pred(rng_key, *args, **kwargs)
