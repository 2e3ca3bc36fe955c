"""The negative log-likelihood over one flat unconstrained vector.

A fitted model is a function ``negloglik(z)`` of a flat vector ``z`` that
concatenates the unconstrained values of the free sites in trace order. Each
block is mapped to its site's support by the bijection NumPyro uses for that
support; no log-Jacobian is ever added, so the optimum is the maximizer of the
likelihood over the constrained parameter (MLE, not MAP).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..adapters import numpyro as npa
from ..adapters.numpyro import ParamValueError
from ..core import cache, hostview
from ..core.sites import Layout
from ..core.x64 import float64
from . import latent
from .inputs import ArgSpec, Inputs, constant_arrays, has_pandas, split_inputs, text_only

__all__ = [
    "Problem",
    "bind",
    "check_new_data",
    "negloglik",
    "NegLogLik",
    "nonfinite_args",
    "random_effect_like",
]


class Problem(NamedTuple):
    """A model bound to its data: everything the objective needs, picklable when the model is.

    ``data`` are the array arguments (the only traced inputs of compiled
    programs, passed to them explicitly so that a program compiled for one data
    set serves any other of the same structure); ``spec`` puts them back into
    ``(args, kwargs)`` together with the static arguments. In constants mode
    (:attr:`constants`) ``data`` is empty and ``spec`` holds the data itself: the
    compiled programs close over it and their cache key carries a digest of it.
    """

    model: Callable | None  # None after unpickling a result whose model could not be pickled
    sites: npa.ModelSites
    layout: Layout
    spec: ArgSpec
    data: tuple
    labels: tuple[str, ...]  # argument label of each data array, for messages
    key: Any  # hashable structure of the arguments
    nobs: int
    model_name: str = ""
    random: Any = None  # latent.RandomSpec when sites are integrated out (random=)
    # (plate, size, subsample_size) of each plate the user's model subsamples; the model
    # above is then the full-data version (npa.FullPlates) and the objective covers every row
    subsample: tuple = ()
    row_chunk: tuple = ()  # (plate, size, rows): the objective accumulated over chunks of rows
    # (plate,): the data are padded along that plate to a bucket size and carry the number of
    # real rows as a last leaf (fitting.buckets); the observed terms past it are masked out
    rows: tuple = ()

    def rebuild(self, data) -> tuple[tuple, dict]:
        return self.spec.rebuild(data[:-1] if self.rows else data)

    def likelihood_model(self, data) -> Callable:
        """The prior-free model for ``data`` (row-masked when the data are padded)."""
        if self.rows:
            return npa.row_masked(self.prior_free_model, self.rows[0], data[-1])
        return self.prior_free_model

    @property
    def constants(self) -> bool:
        """True when the data are held as constants of the compiled programs (the model
        applies NumPy to its data or uses a DataFrame as such): ``data`` is then empty and
        ``spec`` holds private copies of the arguments; ``spec.constants`` says why."""
        return bool(self.spec.constants)

    def arrays(self) -> list[tuple[str, np.ndarray]]:
        """(argument label, array) of every numeric data argument (a DataFrame held as a
        constant gives one array per numeric column)."""
        return data_arrays(self.spec, self.labels, self.data)

    @property
    def structure_key(self) -> tuple:
        """What determines compiled code: model, argument structure, free sites and supports."""
        random = None
        if self.random is not None:
            r = self.random
            random = (
                tuple((s.name, s.shape, _support_key(s.support)) for s in r.layout.sites),
                r.nagq,
                r.structure.key,
                tuple((n, g.tobytes()) for n, g in r.obs_groups),
                r.restricted,
            )
        return (
            self.model,
            self.key,
            tuple((s.name, s.shape, _support_key(s.support)) for s in self.sites.free),
            random,
            self.rows,
        )

    @property
    def prior_free_model(self) -> Callable:
        return npa.prior_free(self.require_model(), self.sites)

    def require_model(self) -> Callable:
        if self.model is None:
            raise RuntimeError(
                f"this result was unpickled without its model ({self.model_name or 'a closure'} could "
                "not be pickled): expected the model to evaluate the likelihood; restore it with "
                "res.with_model(model)"
            )
        return self.model

    def negloglik(self, z: jax.Array, data) -> jax.Array:
        """−log L(θ(z)) with every normalizing constant kept.

        For a likelihood of discrete data log L ≤ 0 always; a value above 0 is a
        numerical failure of the density at extreme parameters (NumPyro's
        ``GammaPoisson`` at μ = 1e114 gave log L = +158,735) and is returned as
        NaN, so optimizers reject such points instead of running to them.
        """
        if self.random is not None:
            return latent.laplace_negloglik(self, z, data)
        args, kwargs = self.rebuild(data)
        if self.row_chunk:
            ll = npa.chunked_log_density(
                self.prior_free_model, args, kwargs, self.layout.constrain(z), *self.row_chunk
            )
        elif self.sites.discrete:
            ll = npa.enumerated_log_density(
                self.prior_free_model, args, kwargs, self.layout.constrain(z), self.sites.max_plate_nesting
            )
        else:
            ll, _ = npa.log_density(self.likelihood_model(data), args, kwargs, self.layout.constrain(z))
        if self.sites.discrete_likelihood:
            ll = jnp.where(ll > 1e-9 * (1.0 + self.nobs), jnp.nan, ll)
        return -ll

    def loglik_terms(self, z: jax.Array, data) -> dict[str, jax.Array]:
        """Per-observation log-likelihood terms for each observed site (scaled, masked)."""
        tr = self._trace(z, data)
        return {k: v[0] for k, v in npa.loglik_terms(tr, self.sites.observed).items()}

    def _trace(self, z: jax.Array, data) -> dict:
        args, kwargs = self.rebuild(data)
        return npa.trace_with_values(self.prior_free_model, args, kwargs, self.layout.constrain(z))

    def deterministic(self, z: jax.Array, data) -> jax.Array:
        """Flat vector of all deterministic sites at θ(z)."""
        if not self.sites.deterministic:
            return jnp.zeros((0,))
        tr = self._trace(z, data)
        return jnp.concatenate(
            [jnp.ravel(tr[name]["value"]).astype(jnp.float64) for name, _ in self.sites.deterministic]
        )

    def static(self) -> Problem:
        """This problem without its data arrays: what a cached compiled program may keep."""
        return self._replace(data=(), sites=self.sites._replace(data=()))

    def with_data(self, other: Problem) -> Problem:
        """This problem's parameters with the data (and observed sites) of ``other``."""
        return self._replace(
            sites=self.sites._replace(
                data=other.sites.data, observed=other.sites.observed, subsampled=other.sites.subsampled
            ),
            spec=other.spec,
            data=other.data,
            labels=other.labels,
            key=other.key,
            nobs=other.nobs,
            subsample=other.subsample,
            row_chunk=other.row_chunk,
        )


def _support_key(c) -> Any:
    """Hashable fingerprint of a constraint, bounds included (they may come from data)."""
    items = []
    for k, v in sorted(vars(c).items()):
        if hasattr(v, "__dict__") and type(v).__module__.startswith("numpyro"):
            items.append((k, _support_key(v)))
        elif isinstance(v, (np.ndarray, jax.Array, float, int)):
            a = np.asarray(v)
            items.append((k, a.shape, a.dtype.str, a.tobytes()))
        else:
            items.append((k, repr(v)))
    return (type(c).__name__, tuple(items))


def bind(
    model: Callable,
    args: tuple,
    kwargs: dict,
    rng_key,
    *,
    init: dict | None = None,
    coords=(),
    random=(),
    nagq: int = 1,
    reml=(),
) -> Problem:
    """Trace the model with its data once, classify and validate its sites.

    ``reml`` names fixed-effect sites integrated out with a flat density together with the
    ``random`` sites (the restricted likelihood).

    ``init`` (constrained values by site) is substituted in this first trace,
    so a model that cannot be evaluated at the default start still binds.
    """
    if not callable(model):
        raise TypeError(f"model: expected a callable NumPyro model, got {type(model).__name__}")
    inputs, tr = _trace_with_data(model, args, kwargs, rng_key, init)
    sites = npa.classify_sites(tr, random=(*random, *reml), restricted=tuple(reml))
    missing = [r for r in random if r not in {s.name for s in sites.random}]
    if missing:
        latent_names = [s.name for s in sites.free if s.kind == "sample"]
        raise ValueError(
            f"random: expected names of latent continuous sample sites {latent_names}, got {missing}"
        )
    _check_reml(sites, reml)
    if not sites.observed:
        latent = [s.name for s in sites.free]
        raise ValueError(
            "model has no observed site: expected at least one numpyro.sample(..., obs=data) "
            f"with data; got only latent or param sites {latent} (was the data argument, "
            "e.g. y=..., left out or None?)"
        )
    discrete = {d[0] for d in sites.discrete}
    for name in sites.observed:
        if npa.observed_kind(tr, name) == "factor":  # a numpyro.factor term holds no data
            continue
        shown = npa.display_name(tr, name)
        msg = npa.observed_shape_problem(tr, name)
        if msg:
            raise ValueError(msg.replace(f"'{name}'", f"'{shown}'"))
        bad = npa.observed_nonfinite(tr, name)
        if bad:
            raise ValueError(
                f"observed site '{shown}': expected finite data, got {bad} NaN/inf value(s) "
                "(drop those observations or mask them with obs_mask=)"
            )
        outside = npa.observed_outside_support(tr, name)
        depends = _support_dependence(model, inputs, tr, name)  # [] for a fixed support
        continuous = [d for d in depends if d not in discrete]
        if continuous:
            fn = npa.base_distribution(tr[name]["fn"])
            raise ValueError(
                f"observed site '{shown}': expected a support that does not depend on the "
                f"parameters, got {type(fn).__name__} whose support depends on {continuous}. Its "
                "likelihood drops to zero where a parameter crosses a data value, so the maximum "
                "lies on that edge (for Uniform(0, θ) the MLE is θ̂ = max(y)), where the "
                "likelihood is not differentiable and neither Newton's method nor Wald or "
                "likelihood-ratio theory applies; such a boundary MLE has a closed form (order "
                "statistics): compute it directly, or write a smooth model"
            )
        if depends:
            outside = None  # the support moves with a discrete latent that is summed out
        if outside:
            raise ValueError(
                f"observed site '{shown}': expected data inside the support of its distribution, {outside}"
            )
    sites = npa.describe_observed(tr, sites)
    if sites.subsampled:
        return _bind_full(
            model, args, kwargs, rng_key, tr, init=init, coords=coords, random=random, nagq=nagq
        )
    nobs = sum(o.count for o in sites.data)
    if nobs == 0:
        raise ValueError("the data are empty: expected at least one (unmasked) observation, got 0")
    problem = Problem(
        model,
        sites,
        Layout(sites.free, tuple(coords)),
        inputs.spec,
        inputs.leaves,
        inputs.labels,
        inputs.key,
        nobs,
        getattr(model, "__qualname__", type(model).__name__),
    )
    if sites.random:
        problem = _with_random(problem, tr, nagq)
    return problem


def _check_reml(sites, reml) -> None:
    """REML's sites: latent sample sites on all of R (location parameters: a flat density on
    them is the restricted likelihood's measure; a scale or a probability has no such role)."""
    if not reml:
        return
    rand = {s.name: s for s in sites.random}
    candidates = [s.name for s in sites.free if s.kind == "sample"] + [n for n in reml if n in rand]
    missing = [r for r in reml if r not in rand]
    if missing:
        raise ValueError(
            f"reml: expected names of latent continuous sample sites (fixed effects) {candidates}, "
            f"got {missing}"
        )
    bounded = [
        r for r in reml if rand[r].bounded or tuple(rand[r].unconstrained_shape) != tuple(rand[r].shape)
    ]
    if bounded:
        raise ValueError(
            f"reml: expected fixed-effect sites whose support is all of R (location parameters, "
            f"integrated out under a flat density), got {[(r, str(rand[r].support)) for r in bounded]}"
        )


# Subsampled plates of more rows than this are evaluated in chunks of rows (bounded memory).
ROW_CHUNK = 8192


def _bind_full(model, args, kwargs, rng_key, tr, **options) -> Problem:
    """A model with ``plate(..., subsample_size=b)``: bound on its full-data version.

    Every downstream quantity (log-likelihood, observed information, robust
    covariances, predictive draws) is then a full-data one; the minibatches are
    only for the stochastic optimizer (``method="svi"``). With one subsampled plate
    holding every observed site, the objective is accumulated over chunks of
    ``max(subsample_size, ROW_CHUNK)`` rows.
    """
    sub = tuple(npa.subsample_plates(tr))
    if options.get("random") or options.get("reml"):
        raise ValueError(
            f"random: expected a model without subsampled plates, got plate(s) {[s[0] for s in sub]} "
            "with subsample_size (integrating out random effects needs every observation)"
        )
    full = npa.full_plates(model, [name for name, _, _ in sub])
    problem = bind(full, args, kwargs, rng_key, **options)
    row_chunk = ()
    if len(sub) == 1 and not problem.sites.discrete:
        name, size, b = sub[0]
        chunk = max(b, ROW_CHUNK)
        in_plate = all(name in [pl[0] for pl in o.plates] for o in problem.sites.data)
        if in_plate and size > chunk:
            row_chunk = (name, size, chunk)
    return problem._replace(subsample=sub, row_chunk=row_chunk)


def _trace_with_data(model, args, kwargs, rng_key, init) -> tuple[Inputs, dict]:
    """The model's arguments split into data and static parts, and a trace with the data.

    Fast path: the data are traced inputs of the compiled programs (one program serves
    every dataset of the same shapes). A model that cannot be traced that way (it applies
    NumPy to its data, branches on data values, or uses a pandas argument as a DataFrame)
    is bound with its data held as constants instead.
    """
    pandas = has_pandas(args, kwargs)
    try:
        inputs = split_inputs(model, args, kwargs)
    except TypeError as e:
        # non-numeric data (text labels, a DataFrame with a text column) cannot be traced: held
        # as constants the model may still use them (group == "south", df["age"]); if it fails
        # then too, the argument error says what is wrong, with the model's own error after it.
        # Only text is admitted so (complex, dates, durations, mixed objects stay refused), and
        # never as observed data.
        if not text_only(args, kwargs):
            raise
        try:
            inputs, tr = _constants_trace(model, args, kwargs, rng_key, init, f"{type(e).__name__}: {e}")
        except ParamValueError:
            raise
        except Exception as e2:  # noqa: BLE001 - reported inside the argument error
            raise TypeError(f"{e}; held as a constant instead, {str(e2)[:300]}") from e
        observed = [n for n, site in tr.items() if site["type"] == "sample" and site.get("is_observed")]
        if any(np.asarray(tr[n]["value"]).dtype.kind not in "biuf" for n in observed):
            raise
        return inputs, tr
    args_c, kwargs_c = inputs.spec.rebuild(inputs.leaves)
    try:
        tr = npa.trace_model(model, args_c, kwargs_c, rng_key, init=init)
    except ParamValueError:
        raise
    except Exception as e:
        if not pandas:
            if inputs.leaves:  # out-of-range indices are the likelier cause (jnp.take fills NaN)
                _, uses = npa.abstract_probe(model, inputs.spec.rebuild, inputs.leaves, {}, rng_key)
                check_indices(inputs.labels, inputs.leaves, uses)
            raise _trace_error(e, inputs) from e
        # the model may index its DataFrame by column (df["age"]): it gets the DataFrame itself;
        # if that fails too, its own error (on the arguments as passed) is the one to report
        return _constants_trace(model, args, kwargs, rng_key, init, f"{type(e).__name__}: {e}")
    if inputs.leaves:
        reason, uses = cache.get_or_build(
            (model, inputs.key, "abstract-probe"),
            lambda: npa.abstract_probe(model, inputs.spec.rebuild, inputs.leaves, tr, rng_key),
        )
        if reason:
            return _constants_trace(model, args, kwargs, rng_key, init, reason)
        check_indices(inputs.labels, inputs.leaves, uses)
    return inputs, tr


def _support_dependence(model, inputs: Inputs, tr: dict, name: str) -> list[str]:
    args, kwargs = inputs.spec.rebuild(inputs.leaves)
    return npa.support_dependence(model, args, kwargs, tr, name)


def check_indices(labels, leaves, uses) -> None:
    """Data used as indices (``u[g]``) must lie in ``0 … size − 1`` of the axis they index.

    JAX clamps an out-of-range gather to the last entry (``jnp.take`` fills it with NaN)
    without an error, so 1-based group codes, a plate smaller than the largest code, or
    pandas' missing-category code −1 would otherwise fit a different model silently.
    """
    for i, size in uses:
        a = leaves[i]
        if np.size(a) == 0 or hostview.dtype_of(a).kind not in "iu":
            continue
        if hostview.is_global(a):  # rows on other processes: the range is reduced where they are
            lo, hi = (int(v) for v in hostview.on_devices(lambda x: (jnp.min(x), jnp.max(x)), a))
        else:
            a = np.asarray(a)
            lo, hi = int(a.min()), int(a.max())
        if lo >= 0 and hi < size:
            continue
        hint = (
            f"codes look 1-based: pass {labels[i].strip(chr(39))} - 1"
            if lo >= 1 and hi == size
            else "negative codes (pandas gives −1 to a missing category) must be dropped or recoded"
            if lo < 0
            else f"the model indexes an axis of only {size} entries (a plate or vector site too small "
            f"for {hi + 1} groups?)"
        )
        raise ValueError(
            f"argument {labels[i]}: expected index values in 0..{size - 1} (it indexes an axis of "
            f"size {size} in the model), got values from {lo} to {hi}; {hint}. Out-of-range indices "
            "are clamped silently by JAX, so the fit would not be the model you wrote"
        )


def check_new_data(model, args, kwargs, rng_key) -> None:
    """New data for a fitted model (predictions): the arguments used as indices must lie in the
    axes they index, as at bind time (see :func:`check_indices`); anything the probe cannot
    read is left to the model's own errors."""
    try:
        inputs = split_inputs(model, args, kwargs)
    except TypeError:
        return
    if not inputs.leaves:
        return
    try:
        _, uses = npa.abstract_probe(model, inputs.spec.rebuild, inputs.leaves, {}, rng_key)
    except Exception:  # noqa: BLE001 - the probe is a check, never a new failure
        return
    check_indices(inputs.labels, inputs.leaves, uses)


def _constants_trace(model, args, kwargs, rng_key, init, reason: str) -> tuple[Inputs, dict]:
    reason = (reason.strip().splitlines() or [""])[0][:300]
    inputs = split_inputs(model, args, kwargs, constants=reason)
    args_c, kwargs_c = inputs.spec.rebuild(())
    try:
        tr = npa.trace_model(model, args_c, kwargs_c, rng_key, init=init)
    except npa.ParamValueError:
        raise
    except Exception as e:
        raise _trace_error(e, inputs) from e
    cache.get_or_build((model, "constants-note"), lambda: _note_constants(model, reason))
    return inputs, tr


def _note_constants(model, reason: str) -> bool:
    """Say once per model (an INFO record of the ``mleppl`` logger) what constants mode costs."""
    logging.getLogger("mleppl").info(
        "model %s: its data are held as constants of the compiled programs (%s); every new "
        "dataset compiles its own programs (about 1-2 s per fit, and the cached programs keep "
        "their data alive) and fit_many cannot batch it; res.data_as_constants is True. Write the "
        "data transformations with jax.numpy (or do them before fit_mle) to keep the fast path.",
        getattr(model, "__qualname__", type(model).__name__),
        reason,
    )
    return True


def _trace_error(e: Exception, inputs: Inputs) -> Exception:
    """The model's own error on being traced with the data, with what mleppl knows about it."""
    bad = nonfinite_args(*_unzip(data_arrays(inputs.spec, inputs.labels, inputs.leaves)))
    if bad:
        return ValueError(
            "the model could not be evaluated: expected finite covariates, got non-finite "
            f"values in argument(s) {', '.join(bad)} (drop or impute those rows); the model "
            f"raised {type(e).__name__}: {e}"
        )
    msg = f"the model raised {type(e).__name__} while being traced with the given data: {e}"
    try:
        return type(e)(msg)
    except Exception:  # noqa: BLE001 - exception types with unusual constructors
        return RuntimeError(msg)


def _unzip(pairs) -> tuple[list, list]:
    return [p[0] for p in pairs], [p[1] for p in pairs]


def data_arrays(spec: ArgSpec, labels, data) -> list[tuple[str, np.ndarray]]:
    """(label, array) of every numeric data argument: the traced leaves, or the constants."""
    if spec.constants:
        return constant_arrays(spec)
    return [(lab, np.asarray(x)) for lab, x in zip(labels, data)]


def _with_random(problem: Problem, tr: dict, nagq: int) -> Problem:
    """Attach the structure of the integrated sites (checked numerically at the trace's values)."""
    sites = problem.sites
    z0 = problem.layout.unconstrain({s.name: tr[s.name]["value"] for s in sites.free})
    spec = latent.random_spec(
        problem, Layout(sites.random), {n: dict(p) for n, p in sites.random_plates}, nagq, z0, problem.data
    )
    return problem._replace(random=spec._replace(restricted=tuple(sites.restricted)))


def random_effect_like(problem: Problem, rng_key) -> list[str]:
    """Free plated sites whose distribution depends on other parameters (see the adapter)."""
    dims = dict(problem.sites.dims)
    free = problem.sites.free
    plated = [s for s in free if s.kind == "sample" and any(d is not None for d in dims.get(s.name, ()))]
    if not plated or len(free) < 2:
        return []
    args, kwargs = problem.rebuild(problem.data)
    model = problem.require_model()
    try:
        tr = npa.trace_model(model, args, kwargs, rng_key)
        return npa.dependent_plated(model, args, kwargs, tr, free, rng_key)
    except Exception:  # noqa: BLE001 - advisory: a model that cannot be re-traced this way is not judged
        return []


def nonfinite_args(labels, data) -> list[str]:
    """Labels (with counts) of floating array arguments holding NaN or inf."""
    out = []
    for lab, x in zip(labels, data):
        if np.issubdtype(x.dtype, np.floating):
            n = int(np.count_nonzero(~np.isfinite(x)))
            if n:
                out.append(f"{lab} ({n} NaN/inf)")
    return out


# Data whose magnitude passes this (or, nonzero, falls below its inverse) overflow float64 in
# the products a likelihood's derivatives form (x² ≈ 1e200 per term, summed over rows).
LARGE_UNITS = 1e100


def badly_scaled_args(labels, data) -> list[str]:
    """Labels (with the magnitude) of floating array arguments in units so large or so small
    that the derivatives of a likelihood built on them overflow or underflow in float64."""
    out = []
    for lab, x in zip(labels, data):
        if not np.issubdtype(x.dtype, np.floating) or not x.size:
            continue
        a = np.abs(x[np.isfinite(x)])
        big = float(a.max(initial=0.0))
        tiny = float(a[a > 0].min(initial=np.inf))
        if big > LARGE_UNITS:
            out.append(f"{lab} (values up to {big:.3g})")
        elif tiny < 1.0 / LARGE_UNITS:
            out.append(f"{lab} (values down to {tiny:.3g})")
    return out


class NegLogLik(NamedTuple):
    """The objective of a model bound to its data, for use with any optimizer.

    ``fun(z)`` is −log L at the flat unconstrained vector ``z`` (jit- and
    grad-able; evaluated in float64, the data are held in float64 — jit it
    inside ``jax.enable_x64(True)`` to keep float64 under your own jit); ``constrain``/``unconstrain`` move between ``z`` and the dict
    of constrained site values; ``prior_free_model`` is the model with its
    priors replaced by flat densities on their supports.
    """

    fun: Callable
    constrain: Callable
    unconstrain: Callable
    param_names: list
    size: int
    nobs: int
    prior_free_model: Callable
    args: tuple
    kwargs: dict


def negloglik(model: Callable, *args, rng_key=None, **kwargs) -> NegLogLik:
    r"""The negative log-likelihood of a NumPyro model on its data, as a pure function.

    The building block under :func:`mleppl.fit_mle`: use it with any JAX
    optimizer or sampler.

    Parameters
    ----------
    model : callable
        A NumPyro model.
    *args, **kwargs
        The model's arguments, data included.
    rng_key : PRNGKey, optional
        Used only to trace the model once.

    Returns
    -------
    NegLogLik

    Notes
    -----
    :math:`\ell(z) = -\sum_{\text{observed sites}} \sum_i s_i m_i \log p(y_i \mid \theta(z))`
    with scale :math:`s_i` and mask :math:`m_i` as NumPyro applies them, and
    :math:`\theta(z)` the bijection of each site's support. It equals the
    ``Trace_ELBO`` loss of an ``AutoDelta`` guide on ``prior_free_model``.

    Examples
    --------
    >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
    >>> from mleppl import negloglik
    >>> def model(y=None):
    ...     mu = numpyro.sample("mu", dist.Normal(0, 10))
    ...     numpyro.sample("y", dist.Normal(mu, 1), obs=y)
    >>> nll = negloglik(model, y=np.array(1.5))
    >>> round(float(nll.fun(jnp.array([1.5]))), 6)  # log(2π)/2
    0.918939
    """
    key = jax.random.PRNGKey(0) if rng_key is None else rng_key
    pr = _bind64(model, args, kwargs, key)
    data = pr.data
    args_c, kwargs_c = pr.rebuild(data)
    lay = pr.layout

    @float64
    def fun(z):
        return pr.negloglik(jnp.asarray(z, dtype=jnp.float64), data)

    return NegLogLik(
        fun=fun,
        constrain=lay.constrain,
        unconstrain=lay.unconstrain,
        param_names=lay.param_names,
        size=lay.size,
        nobs=pr.nobs,
        prior_free_model=pr.prior_free_model,
        args=args_c,
        kwargs=kwargs_c,
    )


@float64
def _bind64(model, args, kwargs, key) -> Problem:
    return bind(model, args, kwargs, key)
