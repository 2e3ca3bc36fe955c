r"""Predictive draws from a fitted model: plug-in or with parameter uncertainty.

Two sources of parameter values:

- **plug-in**: every draw uses the estimate :math:`\hat\theta`;
- **asymptotic normal**: :math:`z_s \sim N(\hat z, \Sigma_z)` on the
  unconstrained scale the optimizer works on, then :math:`\theta_s = \theta(z_s)`,
  so that bounded parameters stay inside their support.

Given parameter values, the observed sites are simulated from their
distributions (the likelihood). Everything NumPyro-specific goes through
:mod:`mleppl._numpyro`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..adapters import numpyro as npa
from ..core import cache
from ..core.options import positive_int
from ..core.x64 import float64
from ..model.inputs import as_rng_key
from ..model.problem import check_new_data

__all__ = ["DrawSet", "draw_z", "evaluate_draws", "predictive", "check_num_samples"]


def check_num_samples(num_samples) -> int:
    return positive_int("num_samples", num_samples)


def _cov_factor(rec) -> np.ndarray:
    """A factor ``L`` with ``L Lᵀ = Σ_z`` (eigen-decomposition: robust to near-singular Σ)."""
    cov = np.asarray(rec.cov_z, dtype=np.float64)
    if not np.all(np.isfinite(cov)):
        sites = rec.problem.layout.coordinate_sites
        names = [n for n, ok in zip(sites, np.all(np.isfinite(cov), axis=1)) if not ok]
        raise ValueError(
            "uncertainty: expected a finite covariance of the estimate to draw parameters from "
            f"N(ẑ, Σ), got NaN for {sorted(set(names))} (the observed information is singular "
            "there); use the point estimate instead (uncertainty=False)"
        )
    lam, v = np.linalg.eigh(0.5 * (cov + cov.T))
    return v * np.sqrt(np.clip(lam, 0.0, None))


def draw_z(rec, rng_key, num_samples: int, uncertainty: bool) -> tuple[np.ndarray, np.ndarray | None]:
    r"""Draws of the unconstrained vector: ``(S, p)`` and their log-density under N(ẑ, Σ_z).

    Without ``uncertainty`` every row is ẑ and the log-density is None.

    Notes
    -----
    :math:`z_s = \hat z + L\varepsilon_s`, :math:`\varepsilon_s \sim N(0, I)`,
    :math:`L L^\top = \Sigma_z`; :math:`\log q(z_s) = -\tfrac12(p\log 2\pi +
    \log|\Sigma_z| + \varepsilon_s^\top\varepsilon_s)`.
    """
    zhat = np.asarray(rec.z, dtype=np.float64)
    p = zhat.shape[0]
    if not uncertainty:
        return np.broadcast_to(zhat, (num_samples, p)).copy(), None
    factor = _cov_factor(rec)
    eps = np.asarray(jax.random.normal(rng_key, (num_samples, p), dtype=jnp.float64))
    z = zhat + eps @ factor.T
    lam = np.linalg.eigvalsh(0.5 * (rec.cov_z + rec.cov_z.T))
    logdet = float(np.sum(np.log(lam))) if np.all(lam > 0) else -np.inf
    log_q = -0.5 * (p * math.log(2 * math.pi) + logdet + np.sum(eps**2, axis=1))
    return z, log_q


class DrawSet(NamedTuple):
    """Quantities at each parameter draw (leading axis S), NumPy arrays."""

    params: dict  # free site -> (S, *shape), constrained
    deterministic: dict  # deterministic site -> (S, *shape)
    loglik: dict  # observed site -> (S, *batch): log p(y_i | θ_s), scaled, masked entries 0
    replicates: dict  # observed site -> (S, *value shape): y_rep ~ p(y | θ_s)
    log_jacobian: np.ndarray  # (S,) log|∂θ/∂z| at z_s


def evaluate_draws(
    problem, data, z: np.ndarray, rng_key, *, observed: tuple[str, ...], fixed: dict | None = None
) -> DrawSet:
    """Trace the prior-free model at every row of ``z`` and collect what ArviZ needs.

    ``fixed``: values of latent sites held fixed in every draw (random effects at their
    conditional modes for group-level predictions); other latent sites are drawn.
    """
    fixed = {k: jnp.asarray(v) for k, v in (fixed or {}).items()}
    keys = jax.random.split(rng_key, z.shape[0])
    program = cache.get_or_build(
        (*problem.structure_key, "predictive", tuple(observed), tuple(sorted(fixed))),
        lambda: _draws_program(problem.static(), tuple(observed)),
    )
    values, det, ll, rep, logj = jax.device_get(program(jnp.asarray(z), keys, data, fixed))
    as_np = lambda d: {k: np.asarray(v) for k, v in d.items()}
    return DrawSet(as_np(values), as_np(det), as_np(ll), as_np(rep), np.asarray(logj))


def _draws_program(problem, observed: tuple[str, ...]):
    """``(z, keys, data, fixed) -> (values, det, loglik, replicates, log|J|)`` at every row of
    ``z`` (compiled once per model, data structure, observed sites and fixed sites: a second
    ``to_datatree()`` or predictive check of a fit reuses it)."""
    layout = problem.layout
    det_names = tuple(name for name, _ in problem.sites.deterministic)
    latent = bool(problem.sites.discrete) or problem.random is not None

    def run(z, keys, data, fixed):
        def one(zs, key):
            args, kwargs = problem.rebuild(data)
            values = {**layout.constrain(zs), **fixed}
            # latent sites (discrete labels, random effects) are drawn from their distributions:
            # the replicates come from the marginal (population-level) predictive
            k_lat, key = jax.random.split(key)
            tr = npa.trace_with_values(
                problem.prior_free_model, args, kwargs, values, k_lat if latent else None
            )
            ll = {k: v[0] for k, v in npa.loglik_terms(tr, observed).items()}
            det = {n: tr[n]["value"] for n in det_names}
            rep = npa.replicate_observed(tr, observed, key)
            logj = npa.log_abs_det_jacobian(layout.sites, layout.unravel(zs))
            return values, det, ll, rep, logj

        return jax.vmap(one)(z, keys)

    return cache.jit(run, hoist=problem.constants, name="predictive")


@float64
def predictive(
    rec,
    rng_key,
    *args,
    num_samples: int = 1000,
    uncertainty: bool = False,
    level: str = "population",
    **model_kwargs,
) -> dict:
    r"""Draws from the fitted model's predictive distribution.

    Parameters
    ----------
    rec : MLEResult
        A fit from :func:`mleppl.fit_mle`.
    rng_key : jax.random.PRNGKey or int
        Randomness for the draws (first, as in NumPyro).
    *args, **model_kwargs
        Arguments for the model, e.g. new covariates. An observed site whose
        data argument is None is simulated, as ``numpyro.infer.Predictive``
        does; data passed for it are returned unchanged. With no arguments at
        all, every observed site is simulated at the fitted data's covariates.
    num_samples : int
        Number of draws S.
    uncertainty : bool
        False: plug-in, every draw at :math:`\hat\theta`. True: each draw at
        its own :math:`\theta_s = \theta(z_s)`, :math:`z_s \sim N(\hat z, \Sigma_z)`.
    level : {"population", "group"}
        For a fit with random effects (``random=``): ``"population"`` draws the
        random effects from their fitted distribution in every draw (the marginal
        predictive: a new group; lme4's ``re.form = NA``, statsmodels' MixedLM
        ``predict``); ``"group"`` holds them at their conditional modes
        (``res.random_effects``: the fitted groups; lme4's default
        ``re.form = NULL``). New data for ``"group"`` must index the same groups.

    Returns
    -------
    dict
        Site name -> NumPy array of shape ``(S, *site shape)``, for every
        sample site not fixed by the parameters and every deterministic site.

    Raises
    ------
    ValueError
        Bad ``num_samples``, or ``uncertainty=True`` with a singular
        observed information (no finite covariance to draw from), or
        ``level="group"`` for a fit without random effects.

    Notes
    -----
    Plug-in: :math:`y^{rep}_s \sim p(y \mid x; \hat\theta)`. With uncertainty:
    :math:`y^{rep}_s \sim p(y \mid x; \theta_s)`, which adds the estimator's
    sampling variability to the noise of the likelihood. Group level:
    :math:`y^{rep}_s \sim p(y \mid x, \hat u; \theta_s)` with :math:`\hat u` the
    conditional modes (their conditional uncertainty is not propagated); population
    level: :math:`u_s \sim p(u \mid \theta_s)`, then :math:`y^{rep}_s \sim p(y \mid x,
    u_s; \theta_s)`.

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> from mleppl import fit_mle
    >>> def model(x, y=None):
    ...     b = numpyro.sample("b", dist.Normal(0, 10))
    ...     with numpyro.plate("n", x.shape[0]):
    ...         numpyro.sample("y", dist.Normal(b * x, 1.0), obs=y)
    >>> x = np.array([1.0, 2.0, 3.0])
    >>> res = fit_mle(model, x, y=np.array([1.1, 1.9, 3.2]))
    >>> draws = res.predictive(0, np.array([10.0]), num_samples=500)
    >>> draws["y"].shape
    (500, 1)
    """
    key = as_rng_key(rng_key)
    s = check_num_samples(num_samples)
    if not isinstance(uncertainty, bool):
        raise TypeError(f"uncertainty: expected True or False, got {uncertainty!r}")
    if level not in ("population", "group"):
        raise ValueError(f"level: expected 'population' or 'group', got {level!r}")
    # REML's fixed effects are at their estimates at either level (they are integrated out of
    # the likelihood, not random draws)
    fixed = {n: np.asarray(rec.params[n]) for n in rec.reml}
    if level == "group":
        if not rec.random_modes:
            raise ValueError(
                "level='group': expected a fit with random effects integrated out (random=[...]); "
                "this fit has none"
            )
        fixed.update({k: np.asarray(v) for k, v in rec.random_modes.items()})
    k_z, k_y = jax.random.split(key)
    z, _ = draw_z(rec, k_z, s, uncertainty)
    problem = rec.problem
    if not args and not model_kwargs:
        observed = tuple(o.name for o in problem.sites.data if o.kind != "factor")
        d = evaluate_draws(problem, problem.data, z, k_y, observed=observed, fixed=fixed)
        return {**d.replicates, **d.deterministic}
    layout = problem.layout
    model = problem.require_model()
    # JAX clamps an index past an axis to its last entry: new data must index fitted levels (a
    # new level of a random effect is level="population", at any fitted index)
    try:
        check_new_data(model, args, model_kwargs, k_y)
    except ValueError as e:
        hint = (
            "; a new level of a random effect has no conditional mode: predict it with "
            "level='population' (its effect drawn from the fitted distribution)"
            if problem.random is not None
            else ""
        )
        raise ValueError(f"predictive: {e}{hint}") from None
    if uncertainty:
        samples = jax.vmap(layout.constrain)(jnp.asarray(z))
        samples.update({k: jnp.broadcast_to(jnp.asarray(v), (s, *np.shape(v))) for k, v in fixed.items()})
        out = npa.predictive(model, k_y, args, model_kwargs, samples=samples)
    else:
        point = {k: jnp.asarray(v) for k, v in {**rec.params, **fixed}.items()}
        out = npa.predictive(model, k_y, args, model_kwargs, params=point, num_samples=s)
    out = jax.device_get(out)
    free = set(layout.names) | set(fixed)
    return {k: np.asarray(v) for k, v in out.items() if k not in free}
