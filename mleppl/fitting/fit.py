"""``fit_mle``: the thin Python shell around one compiled fitting program.

Inside the compiled program failures are data (status codes); here they
become messages, warnings and exceptions. Validation of everything static
(site kinds, shapes, options) happens once, at this boundary.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..core.blas import single_threaded_blas
from ..core.options import fit_options
from ..core.records import FrozenDict, frozen_array
from ..core.status import Status, succeeded
from ..core.warnings import LatentVariableWarning, MultimodalityWarning
from ..core.x64 import float64
from ..model.inputs import as_rng_key
from ..model.problem import bind, random_effect_like
from ..result import MLEResult
from ..solvers.minimize import OptResult
from ..uncertainty.information import invert_information
from .assemble import assemble, find_issues, inverse
from .buckets import padded
from .nan_hessian import rescue
from .program import METHODS, batch_negloglik, conditional_program, fit_program, resolve_method
from .starts import (
    FIXED_START_ROWS,
    MAX_INIT_ATTEMPTS,
    check_init,
    fixed_part_start,
    no_start_error,
    optima_table,
    scale_note,
    start,
)
from .svi import check_supported, check_svi_options, fit_svi, svi_note

__all__ = ["fit_mle", "METHODS"]


def _check_options(method, max_steps, tol, init, n_starts):
    opts = fit_options(method=method, max_steps=max_steps, tol=tol, n_starts=n_starts)
    if init is not None and not isinstance(init, dict):
        raise TypeError(f"init: expected a dict of site name -> constrained value, got {type(init).__name__}")
    return opts


@float64
def fit_mle(
    model: Callable,
    *args,
    method: str = "auto",
    init: dict | None = None,
    rng_key=None,
    max_steps: int | None = None,
    tol: float = 1e-12,
    n_starts: int = 1,
    random=None,
    nagq: int = 1,
    coords: dict | None = None,
    svi_options: dict | None = None,
    reml=None,
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
    method : {"auto", "newton", "lbfgs", "lbfgs-newton", "svi"}
        ``"newton"``: damped Newton with the exact Hessian. ``"lbfgs"``:
        L-BFGS only. ``"lbfgs-newton"``: L-BFGS, then Newton to polish.
        ``"svi"``: stochastic optimization (NumPyro's SVI with an ``AutoDelta``
        guide on the prior-free model, optax Adam), one minibatch per step when
        a plate has ``subsample_size``, judged and finished on the full data
        (see ``svi_options`` and the SVI guide). ``"auto"`` chooses ``"svi"`` when
        a plate subsamples, else Newton when ``nobs · p²`` is small, else
        ``"lbfgs-newton"``. With an exact method, a subsampled plate is
        expanded to every row: the exact full-data MLE is fitted.
    init : dict, optional
        Constrained start values by site name. Other sample sites start at
        the origin of the unconstrained space (zero locations, unit scales),
        then, if the likelihood or its gradient is not finite there, at the
        prior median, then at random points (up to 20 attempts);
        ``numpyro.param`` sites start at their declared value.
    rng_key : jax.random.PRNGKey or int, optional
        Randomness for start values (default: key 0, so fits are reproducible).
    max_steps : int, optional
        Step limit per optimizer phase; by default the optimizer sets its own
        budget and stops on convergence or stagnation.
    tol : float
        Convergence when the Newton decrement satisfies ``λ²/2 ≤ tol`` at a
        positive-definite Hessian.
    coords : dict, optional
        Names for the entries of vector sites, as ArviZ's ``coords``:
        ``{"beta": X.columns}`` labels ``summary()``, ``conf_int()``, ``param_names``
        and the DataTree with ``beta[age]``, ``beta[sex]``, …
    random : list of str, optional
        Sites to integrate out of the likelihood (random effects): the Laplace
        approximation, or adaptive Gauss–Hermite quadrature with ``nagq > 1``;
        ``res.loglik`` is then the marginal log-likelihood and ``res.random_effects``
        holds the conditional modes. See the latent-variables guide.
    nagq : int
        Adaptive Gauss–Hermite points per coordinate for the random effects of one grouping
        factor (lme4's ``nAGQ``; up to three effects per group, as a pruned product grid);
        1 means Laplace.
    reml : list of str, optional
        Fixed-effect sites (location parameters on all of R) integrated out under a flat
        density together with ``random``: the restricted (REML) likelihood, lme4's and
        statsmodels' default for linear mixed models and glmmTMB's ``REML=TRUE``. Exact for
        Gaussian models, the Laplace approximation otherwise. ``res.loglik`` is then the
        restricted log-likelihood on lme4's scale; ``res.params``/``res.se`` of these sites are
        their conditional estimates at the REML variance parameters with standard errors from
        the joint precision (lme4's ``vcov``). Defined without ``random`` too (a linear model:
        the residual variance with divisor n − p). See the REML guide.
    svi_options : dict, optional
        For ``method="svi"``: ``num_steps`` (SVI step budget, 5000),
        ``learning_rate`` (peak Adam step size on the unconstrained scale, 0.02),
        ``warmup`` (linear warmup steps, ``num_steps // 20``), ``check_every``
        (steps per judged window: one epoch of minibatches, at least 25), ``tol``
        (stop SVI when the full-data Newton decrement λ at the window's average
        iterate is ≤ ``tol`` standard errors, 0.5), ``newton_steps`` (exact
        full-data Newton steps after SVI, 5; 0 keeps the SVI estimate, converged
        when λ ≤ ``tol``). ``res.svi`` records the run.
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

    With ``method="svi"`` and a plate of :math:`n` rows subsampled to :math:`B`,
    each SVI step follows the unbiased estimate
    :math:`\hat\ell_B(z) = -\tfrac{n}{B}\sum_{i\in\text{batch}} \log p(y_i \mid x_i;\theta(z))`;
    its optimization error is judged on the full data by the Newton decrement
    :math:`\lambda = \sqrt{g^\top H^{-1} g}` (distance to :math:`\hat z` in standard
    errors), and :math:`\ell`, :math:`g`, :math:`H` always cover every row.

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
    opts = _check_options(method, max_steps, tol, init, n_starts)
    method, max_steps, tol, n_starts = opts
    random = _check_random(random, nagq)
    reml = _check_reml(reml, random, nagq, method)
    svi_opts = check_svi_options(svi_options)
    with single_threaded_blas():
        key = as_rng_key(rng_key)
        problem = _bind(model, args, kwargs, key, init or {}, random=random, nagq=nagq, reml=reml)
        problem = _with_coords(problem, coords)
        _warn_random_like(problem, key)
        init = check_init(init or {}, problem)
        meth = resolve_method(method, problem.nobs, problem.layout.size, bool(problem.subsample))
        steps = None if max_steps is None else int(max_steps)
        scale = jnp.asarray(float(problem.nobs))
        if meth == "svi" and problem.layout.size:
            return _svi(problem, init, key, svi_opts, float(tol), n_starts, max_steps)
        if problem.layout.size == 0:
            out, optima = _no_parameters(problem), None
        elif n_starts > 1:
            out, optima = _multi_start(problem, init, key, meth, steps, float(tol), scale, n_starts)
        else:
            # the line-search Newton first only where compilation is cheap: a random-effects
            # fit that it does not finish would compile the trust region's program as well
            # (sleepstudy: 8.1 s of XLA compilation for the two)
            quick = method == "auto" and meth == "newton" and steps is None and problem.random is None
            out, optima = _single_start(problem, init, key, meth, steps, float(tol), scale, quick), None
        out = jax.device_get(out)
        out = rescue(problem, out, init, key, steps, float(tol), scale)
        if n_starts == 1 and not init:
            out = _probe(problem, out, meth, steps, float(tol), scale)
        issues = find_issues(problem, out[0])
        if n_starts == 1 and (issues or not succeeded(int(out[0].status))):
            out, issues = _verify(problem, init, key, meth, steps, float(tol), scale, out, issues)
        note = scale_note(problem) if not succeeded(int(out[0].status)) else ""
        if note:  # one honest message: what the rays would say about overflowing numbers is noise
            issues = []
        return MLEResult(**assemble(problem, meth, *out, optima=optima, issues=issues, note=note))


def _svi(problem, init, key, opts, tol, n_starts, max_steps) -> MLEResult:
    """``method="svi"``: the stochastic phase and the full-data finish of :mod:`.svi`."""
    if n_starts != 1:
        raise ValueError(f"n_starts: expected 1 with method='svi', got {n_starts}")
    if max_steps is not None:
        raise ValueError(
            f"max_steps: expected None with method='svi' (its budgets are svi_options['num_steps'] "
            f"and svi_options['newton_steps']), got {max_steps!r}"
        )
    check_supported(problem)
    out, info = None, None
    for attempt in range(MAX_INIT_ATTEMPTS):
        z0 = start(problem, init, key, attempt)
        f = float(jax.device_get(problem.negloglik(z0, problem.data)))
        if np.isfinite(f):
            out, info = fit_svi(problem, z0, key, opts, tol)
            break
        if attempt == 0 and len(init) == len(problem.sites.free):
            raise ValueError("init: the log-likelihood is not finite at the given start")
    if out is None:
        raise no_start_error(problem)
    issues = find_issues(problem, out[0])
    rec = assemble(problem, "svi", *out, issues=issues, note=svi_note(info, out[0]))
    return MLEResult(
        **rec,
        svi=FrozenDict({k: frozen_array(v) if isinstance(v, np.ndarray) else v for k, v in info.items()}),
    )


def _with_coords(problem, coords):
    """Named coordinates (ArviZ's vocabulary): ``{"beta": ["age", "sex"]}`` labels ``beta``'s entries."""
    if coords is None:
        return problem
    if not isinstance(coords, dict):
        raise TypeError(f"coords: expected a dict of site name -> labels, got {type(coords).__name__}")
    shapes = {s.name: s.shape for s in problem.sites.free}
    if problem.random is not None:  # REML's fixed effects are labelled too
        shapes.update(
            {s.name: s.shape for s in problem.random.layout.sites if s.name in problem.random.restricted}
        )
    out = []
    for name, labels in coords.items():
        if name not in shapes:
            raise ValueError(
                f"coords: unknown site '{name}'; expected one of the free sites {sorted(shapes)}"
            )
        labels = [str(v) for v in (labels.tolist() if hasattr(labels, "tolist") else list(labels))]
        if len(shapes[name]) != 1 or len(labels) != shapes[name][0]:
            raise ValueError(
                f"coords['{name}']: expected {shapes[name][0] if len(shapes[name]) == 1 else 'a vector site and'} "
                f"labels for site shape {shapes[name]}, got {len(labels)}"
            )
        if len(set(labels)) != len(labels):
            raise ValueError(f"coords['{name}']: expected distinct labels, got {labels}")
        out.append((name, tuple(labels)))
    return problem._replace(layout=problem.layout._replace(coords=tuple(out)))


def _check_random(random, nagq) -> tuple:
    if random is None:
        random = ()
    if isinstance(random, str):
        random = (random,)
    if not all(isinstance(r, str) for r in random):
        raise TypeError(f"random: expected a list of site names, got {random!r}")
    if isinstance(nagq, bool) or not (isinstance(nagq, (int, np.integer)) and nagq >= 1):
        raise ValueError(f"nagq: expected a positive integer (1 = Laplace), got {nagq!r}")
    if nagq > 1 and not random:
        raise ValueError(f"nagq={nagq}: expected random=[...] naming the random effect to integrate out")
    return tuple(random)


def _check_reml(reml, random: tuple, nagq: int, method: str) -> tuple:
    """``reml=``: names of fixed-effect sites, none of them also in ``random``."""
    if reml is None or reml is False:
        return ()
    if isinstance(reml, str):
        reml = (reml,)
    if reml is True or not all(isinstance(r, str) for r in reml) or not len(reml):
        raise TypeError(
            f"reml: expected a list of the fixed-effect site names to integrate out (e.g. reml=['b']), "
            f"got {reml!r}"
        )
    both = sorted(set(reml) & set(random))
    if both:
        raise ValueError(f"reml: expected sites not also in random=, got {both} in both")
    if nagq > 1:
        raise ValueError(
            f"nagq={nagq}: expected nagq=1 with reml= (the fixed effects are integrated by the "
            "Laplace approximation, exact for Gaussian models; quadrature over them is not offered)"
        )
    if method == "svi":
        raise ValueError("reml: expected an exact method (not method='svi'): REML integrates every row")
    return tuple(dict.fromkeys(reml))


def _warn_random_like(problem, key) -> None:
    if problem.random is not None:
        return
    names = random_effect_like(problem, key)
    if names:
        warnings.warn(
            f"site(s) {names} are inside a plate and their distribution depends on other parameters: "
            "they look like random effects, and maximizing the likelihood jointly over random effects "
            f"and parameters is not maximum likelihood; integrate them out with random={names}",
            LatentVariableWarning,
            stacklevel=4,
        )


def _bind(model, args, kwargs, key, init: dict, **options):
    """Bind with ``init`` substituted in the first trace; an ``init`` the model rejects is
    reported as such (validated against the sites of a trace without it)."""
    try:
        return bind(model, args, kwargs, key, init=init, **options)
    except Exception:
        if not init:
            raise
        check_init(init, bind(model, args, kwargs, key, **options))  # raises the message naming the site
        raise


_VERIFY_STARTS = 8


def _verify(problem, init, key, meth, steps, tol, scale, out, issues):
    """Check a failed or flagged fit from other starts before reporting it.

    A diagnosis such as "separation: the supremum lies at infinity" or "unbounded
    likelihood" is a claim, and so is a failure to converge. The fit is repeated
    from ``_VERIFY_STARTS`` other starts (prior median, draws from the priors,
    uniform draws) in one batched program. A start that converges to a finite
    optimum at least as high refutes the claim: that optimum is returned instead
    (a Gaussian-peak regression started far away ran off to 1e23 and was called
    separation; its maximum is interior). Otherwise the claim stands, and says
    that it was checked.
    """
    key_v = jax.random.fold_in(key, 7919)
    starts = []
    for a in range(1, _VERIFY_STARTS + 1):
        try:
            starts.append(start(problem, {}, key_v, a))
        except Exception:  # noqa: BLE001 - a start where the model cannot be evaluated is no start
            continue
    note = f" (checked: none of {_VERIFY_STARTS} other starts converged to a finite maximum as high)"
    if not starts:
        return out, list(issues)
    starts = jnp.stack(starts)
    fitp = padded(problem)
    outs = jax.device_get(fit_program(fitp, meth, steps, tol, batched=True)(fitp.data, starts, scale))
    status, value = np.asarray(outs[0].status), np.asarray(outs[0].value)
    ok = succeeded(status) & np.isfinite(value)
    claimed = float(out[0].value) if np.isfinite(float(out[0].value)) else np.inf
    slack = 1e-6 * (1.0 + abs(claimed)) if np.isfinite(claimed) else 0.0
    if ok.any() and np.min(np.where(ok, value, np.inf)) <= claimed + slack:
        best = int(np.argmin(np.where(ok, value, np.inf)))
        alt = jax.tree_util.tree_map(lambda x: x[best], outs)
        alt_issues = find_issues(problem, alt[0])
        if not any(i.kind != "ridge" for i in alt_issues):
            return alt, alt_issues
    return out, [i._replace(detail=i.detail + note) for i in issues]


def _no_parameters(problem):
    """A model with no free parameter: its log-likelihood, nothing to optimize."""
    z = jnp.zeros((0,))
    value = problem.negloglik(z, problem.data)
    if not bool(jnp.isfinite(value)):
        raise no_start_error(problem)
    det = problem.deterministic(z, problem.data)
    zero = jnp.asarray(0, jnp.int32)
    opt = OptResult(
        z, value, z, jnp.zeros((0, 0)), jnp.asarray(0.0), zero, zero, jnp.asarray(Status.CONVERGED, jnp.int32)
    )
    return opt, z, jnp.zeros((0, 0)), det, jnp.zeros((det.shape[0], 0))


def _single_start(problem, init, key, meth, steps, tol, scale, quick: bool = False):
    """One start; with ``quick`` the line-search Newton first (one Hessian per pass, no
    trust-region bookkeeping: a quarter less time on well-behaved fits, measured 2.9 → 2.3 ms
    at 10⁴ × 10 and 24 → 18 ms at 10⁵ × 10) and ``meth``'s trust region, compiled only then,
    where it does not converge. Its convergence test is the trust region's own."""
    fitp = padded(problem)  # one program for every dataset size of a bucket
    prog = fit_program(fitp, meth, steps, tol)
    fast = fit_program(fitp, "fast", None, tol) if quick else None
    full_init = len(init) == len(problem.sites.free)
    fixed_start = (
        problem.random is not None
        and not problem.random.restricted  # at u = 0 and b = 0 the fixed part is no start
        and not init
        and problem.nobs >= FIXED_START_ROWS
    )
    for attempt in range(MAX_INIT_ATTEMPTS):
        z0 = start(problem, init, key, attempt)
        if attempt == 0 and problem.random is not None:
            # a first fit: its program compiles on the second core while the conditional-modes
            # program of the result (and the fixed-part start) compile here; nothing once
            # they have run
            prog.ahead(fitp.data, z0, scale)
            conditional_program(problem).ahead_here(z0, problem.data)
        if attempt == 0 and fixed_start:
            moved = fixed_part_start(problem, z0)
            out = prog(fitp.data, moved, scale)
            if int(out[0].status) != Status.NONFINITE_START and succeeded(int(out[0].status)):
                return out
        if fast is not None:
            out = fast(fitp.data, z0, scale)
            if int(out[0].status) == Status.CONVERGED:
                return out
        out = prog(fitp.data, z0, scale)
        if attempt == 0 and not succeeded(int(out[0].status)) and not full_init:
            out = _unjittered(problem, init, prog, fitp, scale, out)
        if int(out[0].status) != Status.NONFINITE_START:
            return out
        if attempt == 0 and full_init:
            raise ValueError("init: the log-likelihood or its gradient is not finite at the given start")
    raise no_start_error(problem)


# The default single start is checked for a higher likelihood elsewhere where that is cheap:
# nobs · p at most PROBE_SIZE, no random effects (a Laplace objective per point is dear).
PROBE_SIZE = 20_000
# 1/4 … 8 of each coordinate's scale: further out, a likelihood is often evaluated in lost
# precision (an N-mixture at λ = 1e20: its Poisson logits k·log λ − λ all round to −λ, and
# the normalized weights are rounding noise) and a "higher" value there is an artifact
PROBE_STEPS = 2.0 ** np.arange(-2, 4)


def _probe(problem, out, meth, steps, tol, scale):
    """After a default single-start fit of a small problem: is there a higher likelihood along
    any coordinate axis, out to 8 times the coordinate's scale (its size, its standard error,
    at least 1)? One batched evaluation of −log L at 2·p·6 points. If one is found (a Cauchy
    location started at the origin stopped at the mode near the one low observation, 8.5
    nats below the mode of the other three), the fit is restarted from the best such point and
    the higher optimum returned, with a MultimodalityWarning; a log-concave likelihood never
    triggers it. ``n_starts`` remains the thorough search (see the fitting guide)."""
    opt = out[0]
    p = problem.layout.size
    if problem.random is not None or not p or problem.nobs * p > PROBE_SIZE or not succeeded(int(opt.status)):
        return out
    z = np.asarray(opt.z, dtype=np.float64)
    inv = inverse(opt.hess)  # the diagnosis that follows reuses it
    se = np.sqrt(np.abs(np.diag(inv.cov)))
    c = np.maximum.reduce([np.ones(p), np.abs(z), np.where(np.isfinite(se), 3.0 * se, 0.0)])
    eye = np.eye(p) * c[:, None]
    pts = np.concatenate([z + sign * t * eye for sign in (1.0, -1.0) for t in PROBE_STEPS])
    values = np.asarray(batch_negloglik(problem)(jnp.asarray(pts), problem.data))
    f0 = float(opt.value)
    slack = 1e-6 * (1.0 + abs(f0))
    values = np.where(np.isfinite(values), values, np.inf)
    best = int(np.argmin(values))
    if not values[best] < f0 - slack:
        return out
    fitp = padded(problem)
    again = jax.device_get(fit_program(fitp, meth, steps, tol)(fitp.data, jnp.asarray(pts[best]), scale))
    found = (
        succeeded(int(again[0].status))
        and float(again[0].value) < f0 - slack
        and not find_issues(problem, again[0])  # an optimum at infinity is not one to switch to
    )
    if found:
        warnings.warn(
            f"the default start reached a local optimum (log-likelihood {-f0:.6g}); a probe along "
            f"the coordinate axes found a higher one ({-float(again[0].value):.6g}), which is "
            "returned; other optima may exist: fit with n_starts= to search more widely",
            MultimodalityWarning,
            stacklevel=4,
        )
        return again
    warnings.warn(
        f"the optimum reached from the default start (log-likelihood {-f0:.6g}) may be local: "
        f"the likelihood is higher at {-float(values[best]):.6g} along the coordinate axes, but "
        "no optimum was reached from there; fit with n_starts= to search more widely",
        MultimodalityWarning,
        stacklevel=4,
    )
    return out


def _unjittered(problem, init, prog, fitp, scale, out):
    """The default start without its jitter, tried where the jittered one fails: a jitter of
    1e-3 is far in the units of covariates of size 1e50 (X·b ≈ 1e47 at the start, and the
    trust region never recovered), while the exact origin fits them. The better end is kept."""
    z0 = start(problem, init, None, 0, jitter=False)
    again = prog(fitp.data, z0, scale)
    st, st0 = int(again[0].status), int(out[0].status)
    if succeeded(st) or (
        st != Status.NONFINITE_START
        and (st0 == Status.NONFINITE_START or float(again[0].value) < float(out[0].value))
    ):
        return again
    return out


def _multi_start(problem, init, key, meth, steps, tol, scale, n_starts):
    """Fit from ``n_starts`` starts in one vmapped program; keep the best optimum.

    Starts: the default start (with ``init``), the prior median, then draws
    from the priors and uniform draws on the unconstrained scale in turn.
    """
    # init is one start (the first), not every start: the others explore
    starts = jnp.stack([start(problem, init if a == 0 else {}, key, a) for a in range(n_starts)])
    fitp = padded(problem)
    outs = fit_program(fitp, meth, steps, tol, batched=True)(fitp.data, starts, scale)
    opt = outs[0]
    status = np.asarray(opt.status)
    value = np.where(status == Status.NONFINITE_START, np.inf, np.asarray(opt.value))
    if not np.any(np.isfinite(value)):
        raise no_start_error(problem)
    conv = succeeded(status)
    # best: the highest log-likelihood among converged starts, else among all
    pool = np.where(conv, value, np.inf) if conv.any() else value
    best = int(np.argmin(pool))
    out = jax.tree_util.tree_map(lambda x: x[best], outs)
    inv = invert_information(np.asarray(opt.hess[best]))
    optima, n_optima = optima_table(status, value, np.asarray(opt.z), best, inv)
    others = optima[(optima.optimum > 0) & optima.converged]
    if len(others):
        worst_gap = float(optima.loglik[best] - others.loglik.min())
        warnings.warn(
            f"{n_optima} distinct optima were reached from {n_starts} starts (log-likelihood gap up "
            f"to {worst_gap:.4g}); the best is returned, see res.optima",
            MultimodalityWarning,
            stacklevel=4,
        )
    return out, optima
