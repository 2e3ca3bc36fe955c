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

from ..core.kernels import gamma_poisson_log_prob
from ..core.sites import Site

__all__ = [
    "ObservedSite",
    "ModelSites",
    "classify_sites",
    "prior_free",
    "trace_model",
    "abstract_data_failure",
    "trace_with_values",
    "row_masked",
    "abstract_sites",
    "loglik_terms",
    "log_density",
    "initial_values",
]


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
        if msg["type"] != "sample":
            return
        if msg["is_observed"]:
            msg["fn"] = exact_log_density(msg["fn"])
            return
        name = msg["name"]
        if name in self.free or name in self.imputed:
            fn = msg["fn"]
            # validate_args=False: the flat density does not read the value (a support check
            # on it is redundant, the value comes through the site's bijection), and reading
            # it made XLA's compiled (f, ∇f, H) of a NB2 GLM 1.9× slower (12 → 23 ms at
            # 400 × 200 observations), an XLA:CPU fusion effect of using a parameter twice
            msg["fn"] = ImproperUniform(fn.support, fn.batch_shape, fn.event_shape, validate_args=False)
        if name in self.imputed and msg["value"] is None:
            msg["value"] = self.imputed[name]


_EXACT_CLASSES: dict[type, type] = {}


def _exact_class(cls: type) -> type:
    """``cls`` with the exact Gamma–Poisson log-density (same name; cached per class)."""
    if cls not in _EXACT_CLASSES:

        def log_prob(self, value):
            if self._validate_args:
                self._validate_sample(value)
            dtype = jnp.result_type(float)
            return gamma_poisson_log_prob(
                jnp.asarray(self.concentration, dtype),
                jnp.asarray(self.rate, dtype),
                jnp.asarray(value, dtype),
            )

        _EXACT_CLASSES[cls] = type(
            cls.__name__,
            (cls,),
            {"log_prob": log_prob, "__qualname__": cls.__qualname__, "__module__": cls.__module__},
        )
    return _EXACT_CLASSES[cls]


def exact_log_density(fn):
    """``fn`` with NumPyro's ``GammaPoisson`` log-density (under any wrapper: expand, mask,
    independent, zero-inflation) replaced by the exact kernel of :mod:`mleppl.core.kernels`;
    ``fn`` itself where there is none.

    NumPyro's form goes through ``jax.scipy.special.betaln``, off by up to ~1e-6 in float64
    and ~5× dearer to differentiate twice. Only classes whose ``log_prob`` is
    ``GammaPoisson``'s own are swapped (``NegativeBinomial2``, ``NegativeBinomialProbs``,
    ``GammaPoisson``; ``NegativeBinomialLogits`` has its own log-gamma form); the copy keeps
    every other method (sampling, support, moments) and the class name.
    """
    import copy

    from numpyro.distributions import GammaPoisson

    if isinstance(fn, GammaPoisson):
        if type(fn).log_prob is not GammaPoisson.log_prob:
            return fn
        new = copy.copy(fn)
        new.__class__ = _exact_class(type(fn))
        return new
    base = getattr(fn, "base_dist", None)
    if base is None:
        return fn
    swapped = exact_log_density(base)
    if swapped is base:
        return fn
    new = copy.copy(fn)
    new.base_dist = swapped
    return new


def prior_free(model: Callable, sites: ModelSites) -> Callable:
    """The model with every prior dropped: flat densities on the free sites' supports.

    Observed sites keep their distributions, with the exact log-density of
    :func:`exact_log_density` where NumPyro's is inexact, so the joint log-density of
    the returned model at any parameter value equals the log-likelihood there.
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


class ParamValueError(ValueError):
    """A ``numpyro.param`` site declared with an initial value outside its constraint."""


def _check_param_value(site) -> None:
    constraint = site["kwargs"].get("constraint", constraints.real)
    v = site["args"][0] if site["args"] else None
    if v is None or callable(v):
        return
    v = jnp.asarray(v)
    if not (bool(np.all(np.asarray(constraint(v)))) and bool(np.all(np.isfinite(np.asarray(v))))):
        raise ParamValueError(
            f"numpyro.param site '{site['name']}': expected an initial value inside its constraint "
            f"{constraint}, got {np.asarray(v)}"
        )


def trace_model(model: Callable, args: tuple, kwargs: dict, rng_key, init: dict | None = None) -> dict:
    """Trace the original model once with the data.

    Latent sites are placed at ``init`` where given, else at the origin of their
    unconstrained space rather than sampled from their priors: no random-number
    kernels to compile, which makes a fresh process's first fit about half a
    second faster. A model that needs a random key of its own
    (``numpyro.prng_key()``) is traced again under ``seed``.
    """
    init = dict(init or {})

    def value(site):
        if site["type"] == "param":
            _check_param_value(site)
            return None
        if site["type"] == "sample" and not site["is_observed"] and site["name"] in init:
            fn = site["fn"]
            shape = (
                tuple(site["kwargs"].get("sample_shape", ()) or ())
                + tuple(fn.batch_shape)
                + tuple(fn.event_shape)
            )
            try:
                return jnp.broadcast_to(jnp.asarray(init[site["name"]], dtype=jnp.float64), shape)
            except (ValueError, TypeError):
                return _origin_value(site)
        return _origin_value(site)

    try:
        return handlers.trace(handlers.substitute(model, substitute_fn=value)).get_trace(*args, **kwargs)
    except ParamValueError:
        raise
    except Exception:  # noqa: BLE001 - any failure: retry the plain seeded way, which reports
        seeded = handlers.seed(model, rng_key)
        if init:
            seeded = handlers.substitute(seeded, data=init)
        return handlers.trace(seeded).get_trace(*args, **kwargs)


def abstract_data_failure(model: Callable, rebuild: Callable, leaves: tuple, tr: dict, rng_key) -> str:
    """Why the model cannot be traced with its data as abstract (jit-traced) values; "" if it can.

    The model's log-density is traced once under ``jax.eval_shape`` with the data leaves
    abstract and every latent and param site held at its value in ``tr`` (a trace made
    with the concrete data): no XLA compilation. A model that applies NumPy to its data
    (``np.log(x)``, ``~np.isnan(y)``) raises ``TracerArrayConversionError`` here, one that
    branches on data values a ``ConcretizationTypeError``.
    """
    values = {
        name: site["value"]
        for name, site in tr.items()
        if (site["type"] == "sample" and not site["is_observed"]) or site["type"] == "param"
    }
    seeded = handlers.seed(model, rng_key)

    def f(data):
        args, kwargs = rebuild(data)
        return log_density(seeded, args, kwargs, values)[0]

    needs_values = (
        jax.errors.TracerArrayConversionError,
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerBoolConversionError,
        jax.errors.TracerIntegerConversionError,
    )
    try:
        jax.eval_shape(f, leaves)
    except needs_values as e:  # the model needs concrete data: NumPy on it, or a branch on it
        first = (str(e).strip().splitlines() or [""])[0]
        return f"{type(e).__name__}: {first[:200]}"
    except Exception:  # noqa: BLE001 - any other error is the model's own: the fit reports it
        return ""
    return ""


def trace_with_values(model: Callable, args: tuple, kwargs: dict, values: dict, rng_key=None) -> dict:
    """Trace a model with the given constrained values substituted at their sites; sites not
    given (discrete latents, random effects) are drawn with ``rng_key``."""
    if rng_key is not None:
        model = handlers.seed(model, rng_key)
    return handlers.trace(handlers.substitute(model, data=values)).get_trace(*args, **kwargs)


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


def abstract_sites(model: Callable, inputs: Callable, data) -> dict:
    """``{name: (type, observed, shape, ((plate, size), ...))}`` of every site of ``model``
    traced abstractly: ``inputs(data) -> (args, kwargs, values)`` with ``data`` given as
    ``jax.ShapeDtypeStruct``s (no XLA compilation, nothing evaluated)."""
    out: dict = {}

    def f(d):
        args, kwargs, values = inputs(d)
        tr = trace_with_values(model, args, kwargs, values)
        for name, site in tr.items():
            if site["type"] in ("sample", "deterministic", "param"):
                out[name] = (
                    site["type"],
                    bool(site.get("is_observed", False)),
                    tuple(jnp.shape(site["value"])),
                    tuple((fr.name, fr.size) for fr in site.get("cond_indep_stack", ())),
                )
        return jnp.zeros(())

    jax.eval_shape(f, data)
    return out


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


def classify_sites(tr: dict, random=()) -> ModelSites:
    """Classify the sites of a trace made with the data.

    Raises
    ------
    ValueError
        For a discrete latent site (it must be marginalized) or a model with
        no observed site.
    """
    free, observed, det, imputed, params, discrete, rand = [], [], [], [], [], [], []
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
                discrete.append((name, type(fn).__name__))
                continue
            site_ = _free_site(name, "sample", shape, fn.support)
            (rand if name in random else free).append(site_)
        elif site["type"] == "param":
            constraint = site["kwargs"].get("constraint", constraints.real)
            shape = tuple(jnp.shape(site["value"]))
            inside = np.asarray(constraint(jnp.asarray(site["value"])))
            if not (np.all(inside) and np.all(np.isfinite(np.asarray(site["value"])))):
                raise ValueError(
                    f"numpyro.param site '{name}': expected an initial value inside its constraint "
                    f"{constraint}, got {np.asarray(site['value'])}"
                )
            free.append(_free_site(name, "param", shape, constraint))
            params.append((name, site["value"]))
        elif site["type"] == "deterministic":
            det.append((name, tuple(jnp.shape(site["value"]))))
    for name, cls in discrete:
        if not getattr(tr[name]["fn"], "has_enumerate_support", False):
            raise ValueError(
                f"site '{name}' is a discrete latent variable ({cls}) without a finite support: "
                "expected an enumerable distribution (Categorical, Bernoulli, bounded DiscreteUniform, "
                "...) to sum out exactly; a latent count cannot be enumerated (marginalize it in the "
                "model)"
            )
    det = [(n, s) for n, s in det if n not in masked_bases]
    dims = tuple((n, site_dims(tr, n)) for n in [s.name for s in free] + [n for n, _ in det])
    return ModelSites(
        tuple(free),
        tuple(observed),
        (),  # filled by describe_observed once the data are validated
        tuple(det),
        tuple(imputed),
        tuple(plates.items()),
        dims,
        tuple(subsampled_plates(tr)),
        tuple(params),
        tuple(rand),
        tuple((s.name, tuple(site_plate_axes(tr, s.name).items())) for s in rand),
        tuple((n, tuple(tr[n]["fn"].batch_shape), discrete_support_size(tr, n)) for n, _ in discrete),
        max((len(site.get("cond_indep_stack", ()) or ()) for site in tr.values()), default=0),
    )


_ELEMENTWISE = (
    "IdentityTransform",
    "ExpTransform",
    "SigmoidTransform",
    "SoftplusTransform",
    "AffineTransform",
    "PowerTransform",
    "TanhTransform",
)


def dependent_plated(model: Callable, args: tuple, kwargs: dict, tr: dict, free, rng_key) -> list[str]:
    """Free sample sites inside a plate whose distribution depends on other free sites
    (e.g. ``u ~ Normal(0, sigma_u)`` in a plate over groups): random effects, whose joint
    maximization with the parameters is not maximum likelihood. Found by re-tracing with
    the other sites moved and comparing the site's log-density at its value."""
    plated = [s for s in free if s.kind == "sample" and (tr[s.name].get("cond_indep_stack") or ())]
    if not plated or len(free) < 2:
        return []
    out = []
    for cand in plated:
        values = {}
        for s in free:
            v = jnp.asarray(tr[s.name]["value"])
            values[s.name] = v if s.name == cand.name else s.transform(s.transform.inv(v) + 0.3)
        try:
            seeded = handlers.seed(model, rng_key)
            tr2 = handlers.trace(handlers.substitute(seeded, data=values)).get_trace(*args, **kwargs)
            v = jnp.asarray(tr[cand.name]["value"])
            a = np.asarray(tr[cand.name]["fn"].log_prob(v))
            b = np.asarray(tr2[cand.name]["fn"].log_prob(v))
        except Exception:  # noqa: BLE001 - a model that cannot be moved this way is not judged
            continue
        if a.shape == b.shape and not np.allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True):
            out.append(cand.name)
    return out


def _elementwise(t) -> bool:
    """Whether a bijection maps each coordinate on its own (no simplex, Cholesky, ordering)."""
    from numpyro.distributions.transforms import ComposeTransform, IndependentTransform

    if isinstance(t, IndependentTransform):
        return _elementwise(t.base_transform)
    if isinstance(t, ComposeTransform):
        return all(_elementwise(p) for p in t.parts)
    return type(t).__name__ in _ELEMENTWISE


def _bounded(support) -> bool:
    base = support
    while isinstance(base, constraints.independent):
        base = base.base_constraint
    return not (base is constraints.real or isinstance(base, type(constraints.real)))


def _free_site(name: str, kind: str, shape: tuple, support) -> Site:
    t = biject_to(support)
    ushape = tuple(t.inverse_shape(shape))
    elementwise = ushape == tuple(shape) and _elementwise(t)
    return Site(name, kind, shape, ushape, support, t, _bounded(support), elementwise)


def describe_observed(tr: dict, sites: ModelSites) -> ModelSites:
    """``sites`` with the description of each observed site (after the data were validated)."""
    return sites._replace(data=tuple(_describe_observed(tr, name) for name in sites.observed))


def _describe_observed(tr: dict, name: str) -> ObservedSite:
    site = tr[name]
    fn = site["fn"]
    frames = site.get("cond_indep_stack", ()) or ()
    weight = observation_weight(tr, name)
    return ObservedSite(
        name=name,
        label=display_name(tr, name),
        kind=observed_kind(tr, name),
        value=np.asarray(site["value"]),
        batch_shape=tuple(fn.batch_shape),
        event_dim=int(fn.event_dim),
        plates=tuple((f.name, int(f.dim), int(f.size)) for f in frames),
        dims=site_dims(tr, name),
        mask=observation_mask(tr, name),
        weight=weight,
        count=observed_count(tr, name),
        censoring=censoring(tr, name),
    )


def observed_names(model: Callable, args: tuple, kwargs: dict, rng_key) -> set[str]:
    """Names of the sample sites that are observed when the model runs with these arguments."""
    tr = trace_model(model, args, kwargs, rng_key)
    return {k for k, v in tr.items() if v["type"] == "sample" and v["is_observed"]}


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


def log_density(model: Callable, args: tuple, kwargs: dict, values: dict):
    """Joint log-density (scale and mask applied) and the trace, via NumPyro."""
    from numpyro.infer.util import log_density as _log_density

    return _log_density(model, args, kwargs, values)


def observation_weight(tr: dict, name: str) -> np.ndarray:
    """The site's weight over its batch shape, mask (0/1) times scale, in NumPy: the
    ``weight`` of :func:`loglik_terms` without evaluating any log-density (bind-time cost
    at 10⁴ rows: 1.4 ms that way)."""
    site = tr[name]
    return np.array(_site_weight(site, tuple(site["fn"].batch_shape), np.float64, np), dtype=np.float64)


def _site_weight(site: dict, shape: tuple, dtype, xp):
    """Mask (0/1) times scale over ``shape``, in ``xp`` (NumPy at bind time, JAX when traced)."""
    mask = site_mask(site, xp=xp)
    w = xp.ones(shape, dtype=dtype) if mask is None else xp.broadcast_to(xp.asarray(mask, dtype=dtype), shape)
    scale = site.get("scale")
    return w if scale is None else w * scale


def observed_count(tr: dict, name: str) -> int:
    """Number of unmasked log-likelihood terms of an observed site (NumPy, no compile)."""
    site = tr[name]
    if np.size(site["value"]) == 0 and observed_kind(tr, name) != "factor":
        return 0
    mask = site_mask(site, xp=np)
    shape = tuple(site["fn"].batch_shape)
    weight_zero = site.get("scale") is not None and np.all(np.asarray(site["scale"]) == 0)
    if weight_zero:
        return 0
    if mask is not None:
        return int(np.count_nonzero(np.broadcast_to(mask, shape)))
    return int(math.prod(shape))


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
    """A trace of the ORIGINAL model at start values for its free sites.

    Attempt 0 uses the prior median; odd attempts draw from the priors, which
    are dropped from the likelihood but carry the model's own sense of scale
    (a location with a Normal(0, 10) prior is started within tens, not within
    ±2); even attempts draw uniformly in (-2, 2) on the unconstrained scale
    (NumPyro's default for MCMC). ``numpyro.param`` sites keep their declared
    initial value.
    """
    from numpyro.infer.initialization import init_to_sample

    if attempt == 0:
        strategy = init_to_median(num_samples=15)
    elif attempt % 2:
        strategy = init_to_sample
    else:
        strategy = init_to_uniform(radius=2)
    key = jax.random.fold_in(rng_key, attempt)
    seeded = handlers.seed(model, key)
    return handlers.trace(handlers.substitute(seeded, substitute_fn=strategy)).get_trace(*args, **kwargs)


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


def support_bounds(support, shape) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise lower and upper bounds of a support over ``shape`` (±inf where unbounded)."""
    lo = getattr(support, "lower_bound", -np.inf)
    hi = getattr(support, "upper_bound", np.inf)
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), shape).ravel()
    hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), shape).ravel()
    return lo, hi


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


def free_values(tr: dict, names) -> dict:
    """The values of the named sites in a trace."""
    return {name: tr[name]["value"] for name in names}


def run_nuts(model: Callable, rng_key, args: tuple, kwargs: dict, *, extra_fields=(), **options):
    """NumPyro's ``MCMC(NUTS(model))`` run on the data; returns the ``MCMC`` object.

    ``options``: ``target_accept_prob``, ``dense_mass`` (NUTS) and ``num_warmup``,
    ``num_samples``, ``num_chains``, ``chain_method``, ``progress_bar`` (MCMC).
    """
    from numpyro.infer import MCMC, NUTS

    kernel = NUTS(
        model, target_accept_prob=options.pop("target_accept_prob"), dense_mass=options.pop("dense_mass")
    )
    mcmc = MCMC(kernel, **options)
    mcmc.run(rng_key, *args, extra_fields=tuple(extra_fields), **kwargs)
    return mcmc


def prior_draws(model: Callable, rng_key, args: tuple, kwargs: dict, names, num_samples: int) -> dict:
    """Draws of the named sites from the model's priors, ``{site: (S, ...)}``."""
    from numpyro.infer import Predictive

    return Predictive(model, num_samples=num_samples, return_sites=list(names))(rng_key, *args, **kwargs)


def site_log_prob(tr: dict, name: str) -> jax.Array:
    """The log-density of a latent site at its value in the trace, over its batch shape."""
    site = tr[name]
    return site["fn"].log_prob(site["value"])


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


def enumerated_log_density(model: Callable, args: tuple, kwargs: dict, values: dict, max_plate_nesting: int):
    """Joint log-density with every discrete latent site summed out exactly (NumPyro's funsor
    enumeration: ``enum(config_enumerate(model))``)."""
    from numpyro.contrib.funsor import config_enumerate, enum
    from numpyro.contrib.funsor import log_density as enum_log_density

    m = enum(config_enumerate(model), first_available_dim=-max_plate_nesting - 1)
    ll, _ = enum_log_density(m, args, kwargs, values)
    return ll


class _Tilt(Messenger):
    """Add ``eps[name][..., value]`` to the log-density of the named discrete sites, so that
    the gradient of the enumerated log-likelihood with respect to ``eps`` is the posterior
    probability of each value (the derivative of a log-sum-exp is a softmax)."""

    def __init__(self, fn=None, eps=None):
        self.eps = dict(eps or {})
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample":
            return
        name = msg["name"]
        dim_to_name = (msg.get("infer") or {}).get("dim_to_name") or {}
        time_dim = next((d for d, n in dim_to_name.items() if n == f"_time_{name}"), None)
        if name in self.eps and time_dim is not None:
            # a site inside numpyro.contrib.control_flow.scan, stacked over steps 1..T−1 with
            # its time dimension at name_to_dim["_time_<name>"]; step 0 is the site "_PREV_<name>"
            eps = self.eps[name]
            if eps.ndim != 2:
                raise ValueError(
                    f"site '{name}' inside scan: expected one chain (no plates), got {eps.shape[:-1]}"
                )
            shape = (eps.shape[0] - 1,) + (1,) * (-time_dim - 1) + eps.shape[-1:]
            msg["fn"] = _Tilted(msg["fn"], eps[1:].reshape(shape))
        elif name in self.eps:
            msg["fn"] = _Tilted(msg["fn"], self.eps[name])
        elif name.startswith("_PREV_") and name[6:] in self.eps and self.eps[name[6:]].ndim == 2:
            msg["fn"] = _Tilted(msg["fn"], self.eps[name[6:]][0])


def _tilted_class():
    from numpyro.distributions import Distribution

    class Tilted(Distribution):
        def __init__(self, base, eps):
            self.base, self.eps = base, eps
            super().__init__(base.batch_shape, base.event_shape)

        @property
        def support(self):
            return self.base.support

        @property
        def has_enumerate_support(self):
            return True

        def enumerate_support(self, expand=True):
            return self.base.enumerate_support(expand)

        def sample(self, key, sample_shape=()):
            return self.base.sample(key, sample_shape)

        def log_prob(self, value):
            k = self.eps.shape[-1]
            onehot = jax.nn.one_hot(jnp.asarray(value, dtype=jnp.int32), k, dtype=self.eps.dtype)
            return self.base.log_prob(value) + jnp.sum(onehot * self.eps, axis=-1)

    return Tilted


def _Tilted(base, eps):  # noqa: N802 - a class made on first use (NumPyro's Distribution import)
    return _tilted_class()(base, eps)


def discrete_support_size(tr: dict, name: str) -> int:
    """Number of values of an enumerable discrete site."""
    fn = tr[name]["fn"]
    return int(fn.enumerate_support(expand=False).shape[0])


def latent_posterior(model: Callable, args, kwargs, values, names, shapes, max_plate_nesting: int) -> dict:
    """P(site = k | y, θ) for each named discrete site, shape (*batch, K): exact, by the gradient
    of the enumerated log-likelihood with respect to a tilt of each site's log-density."""

    def loglik(eps):
        return enumerated_log_density(_Tilt(model, eps), args, kwargs, values, max_plate_nesting)

    eps0 = {n: jnp.zeros(shape) for n, shape in zip(names, shapes)}
    return jax.grad(loglik)(eps0)


# ---------------------------------------------------------------- subsample plates and SVI


def subsample_plates(tr: dict) -> list[tuple[str, int, int]]:
    """``(name, size, subsample_size)`` of each plate that subsamples (``subsample_size < size``)."""
    out = []
    for name, site in tr.items():
        if site["type"] == "plate":
            size, sub = site["args"][0], site["args"][1]
            if sub is not None and int(sub) != int(size):
                out.append((name, int(size), int(sub)))
    return out


class _PlateIndices(Messenger):
    """Give the named plates fixed indices instead of a random minibatch.

    ``indices[name]`` is an index array, or None for every row (the full plate).
    NumPyro's plate then scales its log-densities by ``size / len(indices)``:
    1 for the full plate. As the outer handler it is applied after any ``seed``
    inside the model, so its indices win.
    """

    def __init__(self, fn=None, indices=None):
        self.indices = dict(indices or {})
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "plate" and msg["name"] in self.indices:
            size = msg["args"][0]
            idx = self.indices[msg["name"]]
            idx = jnp.arange(size) if idx is None else idx
            msg["value"] = idx
            msg["args"] = (size, int(idx.shape[0]))


class FullPlates(_PlateIndices):
    """A subsampled model evaluated on every row: each named plate covers its full size.

    Equal (and hashing equal) for the same model and plates, so compiled programs
    cached under it are found again by the next fit of the same model.
    """

    def __init__(self, fn=None, plates=()):
        self.plates = tuple(plates)
        super().__init__(fn, indices={p: None for p in self.plates})

    def __eq__(self, other):
        return type(other) is FullPlates and other.fn == self.fn and other.plates == self.plates

    def __hash__(self):
        return hash((FullPlates, self.fn, self.plates))

    def __reduce__(self):
        return (FullPlates, (self.fn, self.plates))


def full_plates(model: Callable, plates) -> FullPlates:
    """The model with the named subsampling plates covering every row (scale 1)."""
    if isinstance(model, FullPlates):
        plates = tuple(dict.fromkeys(model.plates + tuple(plates)))
        model = model.fn
    return FullPlates(model, plates=tuple(plates))


def subsampled_model(model: Callable) -> Callable:
    """The model as the user wrote it (undo :func:`full_plates`)."""
    return model.fn if isinstance(model, FullPlates) else model


def chunked_log_density(model: Callable, args, kwargs, values: dict, plate: str, size: int, chunk: int):
    """The log-density of ``model`` with the plate ``plate`` covering all ``size`` rows,
    accumulated over chunks of ``chunk`` consecutive rows (``lax.map`` over the full chunks,
    then the remainder): NumPyro scales each chunk by ``size/chunk``, undone here exactly
    up to rounding, so the sum is the full-data log-density with memory for one chunk."""
    from numpyro.infer.util import log_density as _log_density

    def one(idx):
        ll, _ = _log_density(_PlateIndices(model, {plate: idx}), args, kwargs, values)
        return ll * (idx.shape[0] / size)

    k, r = divmod(size, chunk)
    total = jnp.zeros(())
    if k:
        total = total + jnp.sum(jax.lax.map(one, jnp.arange(k * chunk).reshape(k, chunk)))
    if r:
        total = total + one(jnp.arange(k * chunk, size))
    return total


class SviProgram(NamedTuple):
    """NumPyro's SVI on the prior-free model with an ``AutoDelta`` guide, stepped in windows.

    ``init(z, rng_key)`` is the SVI state with the guide's parameters at the flat
    unconstrained point ``z``; ``window(state, data)`` runs ``steps`` SVI steps
    (one compiled ``lax.scan``) and returns the new state, the per-step losses and
    the average of the iterates over the window (flat, unconstrained).
    """

    init: Callable
    window: Callable
    steps: int


def svi_program(
    model: Callable, sites: ModelSites, layout, rebuild: Callable, optimizer, steps: int, args, kwargs
):
    """Build :class:`SviProgram` for ``model`` (the user's model, subsample plates intact).

    The guide's ``{site}_auto_loc`` parameters (and the model's own ``numpyro.param``
    sites) are optimized on the unconstrained scale of ``biject_to(support)``, the same
    bijection as mleppl's flat vector ``z``, so the optimizer state is ``z`` itself,
    split by site. ``optimizer`` is an optax ``GradientTransformation``; ``args, kwargs``
    (the data) are used once to set up the guide.
    """
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoDelta
    from numpyro.optim import optax_to_numpyro

    pf = prior_free(model, sites)
    guide = AutoDelta(pf)
    svi = SVI(pf, guide, optax_to_numpyro(optimizer), Trace_ELBO())
    blocks = list(layout.blocks())
    names = [f"{b.site.name}_auto_loc" if b.site.kind == "sample" else b.site.name for b in blocks]
    # set the guide up once (its prototype trace); the state is rebuilt from z below
    proto = svi.init(jax.random.PRNGKey(0), *args, **kwargs)
    got = set(svi.optim.get_params(proto.optim_state))
    if got != set(names):
        raise ValueError(
            f"method='svi': expected the guide's parameters {sorted(names)}, got {sorted(got)} "
            "(a model whose parameters change between traces is not supported)"
        )

    def to_z(params_u):
        return jnp.concatenate([jnp.ravel(params_u[n]).astype(jnp.float64) for n in names])

    def init(z, rng_key):
        u = layout.unravel(z)
        params = {n: u[b.site.name] for n, b in zip(names, blocks)}
        return proto._replace(optim_state=svi.optim.init(params), rng_key=rng_key)

    def window(state, data):
        a, kw = rebuild(data)

        def body(carry, _):
            st, zsum = carry
            st, loss = svi.stable_update(st, *a, **kw)
            return (st, zsum + to_z(svi.optim.get_params(st.optim_state))), loss

        p = layout.size
        (state, zsum), losses = jax.lax.scan(body, (state, jnp.zeros((p,))), None, length=steps)
        return state, losses, zsum / steps

    return SviProgram(init, jax.jit(window), steps)


def frozen_minibatches(model: Callable, args: tuple, kwargs: dict, plates) -> list[str]:
    """The subsampling plates whose minibatch does not change with the random key given from
    outside (a model wrapped in ``handlers.seed`` draws the same minibatch at every step)."""

    def indices(k):
        m = handlers.seed(handlers.substitute(model, substitute_fn=_origin_value), jax.random.PRNGKey(k))
        tr = handlers.trace(m).get_trace(*args, **kwargs)
        return {name: np.asarray(tr[name]["value"]) for name in plates if name in tr}

    a, b = indices(1), indices(2)
    return [name for name in a if name in b and np.array_equal(a[name], b[name])]
