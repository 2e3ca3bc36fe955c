"""``fit_mle``: the thin Python shell around one compiled fitting program.

Inside the compiled program failures are data (status codes); here they
become messages, warnings and exceptions. Validation of everything static
(site kinds, shapes, options) happens once, at this boundary.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _diagnose as diag
from . import _numpyro as npa
from ._covariance import delta_cov, invert_information
from ._inputs import as_rng_key
from ._likelihood import Bound, bind, nonfinite_args
from ._optimize import CONVERGED, NONFINITE_START, STATUS_MESSAGES, minimize
from ._result import MLEResult, frozen_array, frozen_dict
from ._warnings import (
    BoundaryWarning,
    ConvergenceWarning,
    HessianWarning,
    IdentifiabilityWarning,
    MultimodalityWarning,
    SeparationWarning,
)

__all__ = ["fit_mle", "METHODS"]

METHODS = ("auto", "newton", "lbfgs", "lbfgs-newton")
MAX_INIT_ATTEMPTS = 20
_DEFAULT_MAX_STEPS = {"newton": 100, "lbfgs": 2000, "lbfgs-newton": 1000}
# Newton's cost per step grows like nobs·p² (the Hessian), L-BFGS's like nobs·p:
# below this budget exact Newton is as cheap as anything and the most robust.
_NEWTON_BUDGET = 5e7
# Above this many (observation × direction) tangent values the Hessian is computed in
# chunks of directions, bounding its memory to ~ _HESS_TANGENTS × 8 bytes per array.
_HESS_TANGENTS = 5e6

_PROGRAMS: dict = {}
_BLAS: list = []  # a cached threadpoolctl controller, made once LAPACK is loaded


@contextlib.contextmanager
def single_threaded_blas():
    """Limit BLAS/LAPACK (OpenBLAS) to one thread while a fit runs; restore after.

    The p × p eigen-decompositions inside and after the compiled program go to
    LAPACK, whose OpenBLAS threads busy-wait and then fight XLA's own thread
    pool: measured here, six Newton steps at p = 50 took 226 ms with the default
    threads and 15 ms with one. Matrices this small gain nothing from threads.
    """
    from threadpoolctl import ThreadpoolController, threadpool_limits

    if _BLAS:
        with _BLAS[0].limit(limits=1, user_api="blas"):
            yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    _BLAS.append(ThreadpoolController())  # now that JAX has loaded its LAPACK


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


def _check_options(method, max_steps, tol, init) -> None:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if max_steps is not None and (
        isinstance(max_steps, bool) or not (isinstance(max_steps, (int, np.integer)) and max_steps > 0)
    ):
        raise ValueError(f"max_steps: expected a positive integer or None, got {max_steps!r}")
    if isinstance(tol, bool) or not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol: expected a positive finite number, got {tol!r}")
    if init is not None and not isinstance(init, dict):
        raise TypeError(f"init: expected a dict of site name -> constrained value, got {type(init).__name__}")


def _resolve_method(method: str, nobs: int, p: int) -> str:
    if method != "auto":
        return method
    return "newton" if nobs * max(p, 1) ** 2 <= _NEWTON_BUDGET else "lbfgs-newton"


def _structure_key(bound: Bound) -> tuple:
    pr = bound.problem
    return (
        pr.model,
        bound.inputs.key,
        tuple((s.name, s.shape, _support_key(s.support)) for s in pr.sites.free),
    )


def _batch_negloglik(bound: Bound):
    """jit(vmap(negloglik)) over a batch of z, for the diagnosis (compiled on first need)."""
    key = (*_structure_key(bound), "batch-nll")
    fn = _PROGRAMS.get(key)
    if fn is None:
        pr = bound.problem
        fn = jax.jit(jax.vmap(lambda z, leaves: pr.negloglik(z, leaves), in_axes=(0, None)))
        _PROGRAMS[key] = fn
    return fn


def _program(bound: Bound, method: str, max_steps: int, tol: float, batched: bool = False):
    """The compiled fit for this model, data structure and options (cached).

    ``batched``: the same program vmapped over a batch of starts (``n_starts``).
    """
    pr = bound.problem
    key = (
        *_structure_key(bound),
        method,
        max_steps,
        tol,
        batched,
        bound.nobs * bound.problem.layout.size > _HESS_TANGENTS,
    )
    prog = _PROGRAMS.get(key)
    if prog is not None:
        return prog
    layout = pr.layout
    has_det = bool(pr.sites.deterministic)

    p = layout.size
    chunk = None if bound.nobs * p <= _HESS_TANGENTS else max(1, int(_HESS_TANGENTS // bound.nobs))

    def run(leaves, z0, scale):
        res = minimize(
            lambda z: pr.negloglik(z, leaves),
            z0,
            method=method,
            scale=scale,
            max_steps=max_steps,
            tol=tol,
            hess_chunk=chunk,
        )

        def flat_theta(z):
            return layout.flatten(layout.constrain(z)).astype(jnp.float64)

        theta, jac = flat_theta(res.z), jax.jacfwd(flat_theta)(res.z)
        if has_det:

            def flat_det(z):
                return pr.deterministic(z, leaves).astype(jnp.float64)

            det, jac_det = flat_det(res.z), jax.jacfwd(flat_det)(res.z)
        else:
            det, jac_det = jnp.zeros((0,)), jnp.zeros((0, res.z.shape[0]))
        return res, theta, jac, det, jac_det

    prog = jax.jit(jax.vmap(run, in_axes=(None, 0, None)) if batched else run)
    _PROGRAMS[key] = prog
    return prog


def _check_init(init: dict, bound: Bound) -> dict:
    free = {s.name: s for s in bound.problem.sites.free}
    out = {}
    for name, value in init.items():
        if name not in free:
            raise ValueError(f"init: unknown site '{name}'; expected one of the free sites {sorted(free)}")
        s = free[name]
        v = jnp.asarray(np.asarray(value, dtype=np.float64))
        if v.shape != s.shape:
            try:
                v = jnp.broadcast_to(v, s.shape)
            except ValueError:
                raise ValueError(
                    f"init['{name}']: expected shape {s.shape}, got {tuple(np.shape(value))}"
                ) from None
        ok = bool(np.all(np.asarray(s.support(v)))) and bool(np.all(np.isfinite(np.asarray(v))))
        if not ok:
            raise ValueError(
                f"init['{name}']: expected a value inside the support {s.support}, got {np.asarray(value)}"
            )
        out[name] = v
    return out


def _start(bound: Bound, init: dict, rng_key, attempt: int) -> jax.Array:
    pr = bound.problem
    if attempt == 0 and len(init) == len(pr.sites.free):
        values = dict(init)
    elif attempt == 0:
        # Near the origin of the unconstrained space: zero coefficients, unit
        # scales, uniform simplexes, a classic start for regression-type
        # likelihoods. Not exactly at it: JAX differentiates NumPyro's
        # logit-parametrized log-densities wrongly at logit == 0 (the kinks of
        # max(x, 0) and |x| tie there), so a fixed jitter of at most 1e-3 breaks
        # the tie. numpyro.param sites start at their declared value.
        jitter = 1e-3 * np.cos(2.399963 * np.arange(1, pr.layout.size + 1))
        fixed = {s.name: bound.trace[s.name]["value"] for s in pr.sites.free if s.kind == "param"}
        fixed.update(init)
        return jnp.asarray(pr.layout.with_blocks(jitter, fixed))
    else:
        args, kwargs = pr.rebuild(bound.inputs.leaves)
        tr = npa.initial_values(pr.model, args, kwargs, rng_key, attempt - 1)
        values = {s.name: tr[s.name]["value"] for s in pr.sites.free}
        values.update(init)
    return pr.layout.unconstrain(values)


def _unestimable_names(bound: Bound, estimable: np.ndarray) -> list[str]:
    sites = bound.problem.layout.coordinate_sites
    return list(dict.fromkeys(site for site, ok in zip(sites, estimable) if not ok))


def fit_mle(
    model: Callable,
    *args,
    method: str = "auto",
    init: dict | None = None,
    rng_key=None,
    max_steps: int | None = None,
    tol: float = 1e-12,
    n_starts: int = 1,
    **kwargs,
) -> MLEResult:
    r"""Maximum-likelihood fit of an unmodified NumPyro model.

    Every free ``numpyro.sample`` site loses its prior and keeps its support
    as a constraint; ``numpyro.param`` sites keep their constraint; observed
    sites form the likelihood. The estimate maximizes the likelihood over the
    constrained parameter (no prior, no log-Jacobian).

    Parameters
    ----------
    model : callable
        A NumPyro model.
    *args, **kwargs
        Passed to the model (covariates and data, e.g. ``X, y=y``). Array
        arguments are the data; other arguments are treated as static.
    method : {"auto", "newton", "lbfgs", "lbfgs-newton"}
        ``"newton"``: damped Newton with the exact Hessian. ``"lbfgs"``:
        L-BFGS only. ``"lbfgs-newton"``: L-BFGS, then Newton to polish.
        ``"auto"`` chooses Newton when ``nobs · p²`` is small, else
        ``"lbfgs-newton"``.
    init : dict, optional
        Constrained start values by site name. Other sample sites start at
        the origin of the unconstrained space (zero locations, unit scales),
        then, if the likelihood or its gradient is not finite there, at the
        prior median, then at random points (up to 20 attempts);
        ``numpyro.param`` sites start at their declared value.
    rng_key : jax.random.PRNGKey or int, optional
        Randomness for start values (default: key 0, so fits are reproducible).
    max_steps : int, optional
        Step limit per optimizer phase (defaults: Newton 100, L-BFGS 2000).
    tol : float
        Convergence when the Newton decrement satisfies ``λ²/2 ≤ tol`` at a
        positive-definite Hessian.
    n_starts : int
        Number of starts (default 1). With more, all are fitted in one
        vmapped program, the best optimum is returned, ``res.optima`` lists
        what each start reached, and a ``MultimodalityWarning`` is emitted when
        a converged start reached a materially different optimum.

    Returns
    -------
    MLEResult

    Raises
    ------
    ValueError
        Bad input: no observed site, non-finite data reaching the likelihood,
        data whose shape disagrees with its plate, a discrete latent site, an
        ``init`` naming an unknown site or lying outside its support.

    Warns
    -----
    ConvergenceWarning
        The convergence test failed (``res.converged`` is False).
    HessianWarning
        The observed information is not positive definite; affected standard
        errors are NaN.
    SeparationWarning, BoundaryWarning, IdentifiabilityWarning
        The after-fit diagnosis (run only when the fit shows a sign of trouble)
        found estimates running to infinity, an estimate on the boundary of its
        support or an unbounded likelihood, or a flat ridge; see ``res.issues``.
    MultimodalityWarning
        With ``n_starts > 1``, different starts reached different optima.

    Notes
    -----
    The objective is the negative log-likelihood over the flat unconstrained
    vector :math:`z`,

    .. math:: \ell(z) = -\sum_i \log p(y_i \mid x_i; \theta(z)),

    equal to the ``Trace_ELBO`` loss of an ``AutoDelta`` guide on the
    prior-free model. Standard errors come from the observed information
    :math:`H = \nabla^2 \ell(\hat z)` mapped to :math:`\theta` by the delta
    method, :math:`\Sigma_\theta = J H^{-1} J^\top`.

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> from mleppl import fit_mle
    >>> def model(x, y=None):
    ...     mu = numpyro.sample("mu", dist.Normal(0, 10))
    ...     sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    ...     with numpyro.plate("n", x.shape[0]):
    ...         numpyro.sample("y", dist.Normal(mu, sigma), obs=y)
    >>> y = np.array([1.0, 2.0, 4.0])
    >>> res = fit_mle(model, np.zeros(3), y=y)
    >>> round(float(res.params["mu"]), 6), round(float(res.params["sigma"]) ** 2, 6)
    (2.333333, 1.555556)
    """
    _check_options(method, max_steps, tol, init)
    if isinstance(n_starts, bool) or not (isinstance(n_starts, (int, np.integer)) and n_starts >= 1):
        raise ValueError(f"n_starts: expected a positive integer, got {n_starts!r}")
    with jax.enable_x64(True), single_threaded_blas():
        key = as_rng_key(rng_key)
        bound = bind(model, args, kwargs, key)
        pr = bound.problem
        p = pr.layout.size
        init = _check_init(init or {}, bound)
        meth = _resolve_method(method, bound.nobs, p)
        steps = max_steps or _DEFAULT_MAX_STEPS[meth]
        leaves = bound.inputs.leaves  # immutable float64/int64/bool JAX arrays already
        scale = jnp.asarray(float(bound.nobs))
        if n_starts > 1:
            out, optima = _multi_start(bound, init, key, meth, steps, float(tol), leaves, scale, n_starts)
        else:
            out, optima = _single_start(bound, init, key, meth, steps, float(tol), leaves, scale), None
        opt, theta, jac, det, jac_det = jax.device_get(out)
        return _assemble(bound, meth, opt, theta, jac, det, jac_det, leaves, optima)


def _no_start_error(bound: Bound) -> ValueError:
    bad = nonfinite_args(bound.inputs)
    if bad:
        return ValueError(
            "the log-likelihood is not finite: expected finite covariates, got non-finite "
            f"values in argument(s) {', '.join(bad)} (drop or impute those rows)"
        )
    return ValueError(
        f"no start found where the log-likelihood and its gradient are finite in "
        f"{MAX_INIT_ATTEMPTS} attempts; pass init= with a valid start"
    )


def _single_start(bound, init, key, meth, steps, tol, leaves, scale):
    prog = _program(bound, meth, steps, tol)
    full_init = len(init) == len(bound.problem.sites.free)
    for attempt in range(MAX_INIT_ATTEMPTS):
        out = prog(leaves, _start(bound, init, key, attempt), scale)
        if int(out[0].status) != NONFINITE_START:
            return out
        if attempt == 0 and full_init:
            raise ValueError("init: the log-likelihood or its gradient is not finite at the given start")
    raise _no_start_error(bound)


def _multi_start(bound, init, key, meth, steps, tol, leaves, scale, n_starts):
    """Fit from ``n_starts`` starts in one vmapped program; keep the best optimum.

    Starts: the default start (or ``init``), the prior median, then random
    points; ``init`` values override every start for the sites they name.
    """
    import pandas as pd

    starts = jnp.stack([_start(bound, init, key, a) for a in range(n_starts)])
    outs = _program(bound, meth, steps, tol, batched=True)(leaves, starts, scale)
    opt = outs[0]
    status = np.asarray(opt.status)
    value = np.where(status == NONFINITE_START, np.inf, np.asarray(opt.value))
    if not np.any(np.isfinite(value)):
        raise _no_start_error(bound)
    conv = status == CONVERGED
    # best: the highest log-likelihood among converged starts, else among all
    pool = np.where(conv, value, np.inf) if conv.any() else value
    best = int(np.argmin(pool))
    out = jax.tree_util.tree_map(lambda x: x[best], outs)
    inv = invert_information(np.asarray(opt.hess[best]))
    zs = np.asarray(opt.z)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(np.abs(np.diag(inv.cov)))
        dist_se = np.nanmax(np.abs(zs - zs[best]) / np.where(se > 0, se, np.nan), axis=1)
    ll = -value
    tol_ll = 1e-6 * (1.0 + abs(ll[best]))
    ids, reps = np.full(n_starts, -1), []
    for i in np.argsort(value):
        if not np.isfinite(value[i]):
            continue
        for j, r in enumerate(reps):
            if (
                abs(ll[i] - ll[r]) <= tol_ll
                and np.nanmax(np.abs(zs[i] - zs[r]) / np.where(se > 0, se, 1.0)) <= 1e-3
            ):
                ids[i] = j
                break
        else:
            ids[i] = len(reps)
            reps.append(i)
    optima = pd.DataFrame(
        {
            "loglik": ll,
            "converged": conv,
            "distance_se": dist_se,
            "optimum": ids,
            "best": np.arange(n_starts) == best,
        },
        index=pd.RangeIndex(n_starts, name="start"),
    )
    others = optima[(optima.optimum > 0) & optima.converged]
    if len(others):
        worst_gap = float(ll[best] - others.loglik.min())
        warnings.warn(
            f"{len(reps)} distinct optima were reached from {n_starts} starts (log-likelihood gap up "
            f"to {worst_gap:.4g}); the best is returned, see res.optima",
            MultimodalityWarning,
            stacklevel=4,
        )
    return out, optima


def _report_issues(issues, converged, message):
    """Warnings, the verdict and the message for the diagnosed issues."""
    for issue in issues:
        cls = {
            "separation": SeparationWarning,
            "boundary": BoundaryWarning,
            "unbounded": BoundaryWarning,
            "ridge": IdentifiabilityWarning,
        }[issue.kind]
        text = f"{issue.kind}: {issue.detail}. Direction: {issue.direction}"
        if issue.kind in ("separation", "boundary", "unbounded"):
            text += f"; standard errors of {list(issue.sites)} set to NaN"
        if issue.kind in ("separation", "unbounded"):
            converged = False
        message = f"{text} [optimizer: {message}]"
        warnings.warn(text, cls, stacklevel=4)
    return converged, message


def _assemble(bound: Bound, method: str, opt, theta, jac, det, jac_det, leaves, optima=None) -> MLEResult:
    pr = bound.problem
    status = int(opt.status)
    converged = status == CONVERGED
    message = STATUS_MESSAGES[status]
    if not converged:
        grad_max = float(np.max(np.abs(opt.grad), initial=0.0))
        message += f" (max |gradient| {grad_max:.3g}, λ²/2 {0.5 * float(opt.decrement2):.3g})"
    inv = invert_information(opt.hess)
    z = np.asarray(opt.z)
    issues = []
    if status != NONFINITE_START and diag.suspicious(converged, inv.positive_definite, z, inv.cov):
        issues = _diagnose(bound, opt, inv, leaves)
    if not converged and not any(i.kind in ("separation", "unbounded", "boundary", "ridge") for i in issues):
        warnings.warn(f"fit did not converge: {message}", ConvergenceWarning, stacklevel=3)
    if not inv.positive_definite:
        bad = _unestimable_names(bound, inv.estimable)
        warnings.warn(
            "the observed information (Hessian of the negative log-likelihood) is not positive "
            f"definite at the estimate (smallest eigenvalue {np.min(inv.eigvals):.3g}); "
            f"standard errors of {bad or 'some parameters'} are NaN",
            HessianWarning,
            stacklevel=3,
        )
    cov = delta_cov(jac, inv)
    if issues:
        converged, message = _report_issues(issues, converged, message)
        # Wald is invalid for every site running to infinity or to a boundary
        bad_sites = {s for i in issues if i.kind != "ridge" for s in i.sites}
        mask = np.array([site in bad_sites for site in pr.layout.constrained_sites])
        cov[mask, :] = np.nan
        cov[:, mask] = np.nan
    params = pr.layout.split(np.asarray(theta))
    se = pr.layout.split(np.sqrt(np.diag(cov)))
    det_vals, det_se, i = {}, {}, 0
    if det.size:
        var = np.diag(delta_cov(jac_det, inv))
        for name, shape in pr.sites.deterministic:
            k = math.prod(shape)
            det_vals[name] = det[i : i + k].reshape(shape)
            det_se[name] = np.sqrt(var[i : i + k]).reshape(shape)
            i += k
    return MLEResult(
        params=frozen_dict(params),
        se=frozen_dict(se),
        cov=frozen_array(cov),
        param_names=list(pr.layout.param_names),
        loglik=float(-opt.value),
        nobs=bound.nobs,
        n_params=pr.layout.size,
        converged=converged,
        message=message,
        status=status,
        method=method,
        n_steps=int(opt.n_newton) + int(opt.n_lbfgs),
        grad_norm=float(np.max(np.abs(opt.grad), initial=0.0)),
        decrement=float(0.5 * opt.decrement2),
        deterministic=frozen_dict(det_vals),
        deterministic_se=frozen_dict(det_se),
        z=frozen_array(opt.z),
        cov_z=frozen_array(inv.cov),
        hessian=frozen_array(opt.hess),
        jacobian=frozen_array(jac),
        hessian_eigvals=frozen_array(inv.eigvals),
        issues=tuple(issues),
        optima=optima,
        fit=bound,
    )


def _diagnose(bound: Bound, opt, inv, leaves) -> list:
    """The ray test of mleppl._diagnose on this fit (one vmapped evaluation)."""
    z = np.asarray(opt.z, dtype=np.float64)
    h = np.asarray(opt.hess, dtype=np.float64)
    g = np.asarray(opt.grad, dtype=np.float64)
    if not np.all(np.isfinite(z)):
        return []
    if np.all(np.isfinite(h)):
        dirs = diag.ray_directions(z, g, h, inv.eigvecs, inv.eigvals, inv.scale, inv.cov)
    else:
        # the Hessian overflowed (e.g. a scale at 1e-129): probe radially and every coordinate
        radial = z / max(float(np.max(np.abs(z))), 1e-300)
        dirs = np.vstack([radial[None, :], np.eye(z.shape[0])]) if np.any(z != 0) else np.eye(z.shape[0])
    if not len(dirs):
        return []
    pts = diag.ray_points(z, dirs)
    values = np.asarray(_batch_negloglik(bound)(jnp.asarray(pts), leaves))
    labels, sites = diag.z_labels(bound.problem.layout)
    return diag.classify_rays(
        float(opt.value), values, dirs, labels, sites, diag.bounded_sites(bound.problem.layout)
    )
