"""``method="svi"``: stochastic maximum likelihood, judged and finished on the full data.

The stochastic phase is NumPyro's SVI with an ``AutoDelta`` guide on the
prior-free model (``Trace_ELBO`` loss = the negative log-likelihood, estimated
from one minibatch per step when a plate has ``subsample_size``), driven by optax
Adam with a warmup–cosine step-size schedule. Every ``check_every`` steps the
average of the window's iterates is judged on the full data: the Newton
decrement ``λ = √(gᵀH⁻¹g)`` there is the distance to the exact maximum in
standard errors (to second order), from the exact gradient and observed
information accumulated over every row (in chunks of rows for a subsampled
plate). The phase stops when ``λ ≤ tol`` or when its step budget is spent.
Up to ``newton_steps`` exact Newton steps on the full data then finish the fit,
judged by the same convergence test as every other method.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..adapters import numpyro as npa
from ..core import cache
from ..core.status import Status
from ..solvers.linalg import decrement, eig_scaled, evaluate
from ..solvers.minimize import OptResult
from .program import after_fit, fit_program, hess_chunk

__all__ = ["SVI_DEFAULTS", "check_svi_options", "check_supported", "fit_svi", "svi_note"]

SVI_DEFAULTS = {
    "num_steps": 5000,  # step budget of the stochastic phase
    "learning_rate": 0.02,  # peak Adam step size on the unconstrained scale
    "warmup": None,  # linear warmup steps (default: num_steps // 20)
    "check_every": None,  # steps per judged window (default: one epoch, at least 25)
    "tol": 0.5,  # stop the stochastic phase at λ ≤ tol standard errors
    "newton_steps": 5,  # exact full-data Newton steps to finish (0: the SVI estimate as is)
}
# The cosine schedule decays from the peak to this fraction of it at the end of the budget.
END_FACTOR = 1e-3


def _int_option(opts, key, lo):
    v = opts[key]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"svi_options['{key}']: expected an integer ≥ {lo}, got {v!r}")
    return int(v)


def check_svi_options(svi_options) -> dict:
    """The options with defaults filled in; errors name the bad key."""
    if svi_options is None:
        svi_options = {}
    if not isinstance(svi_options, dict):
        raise TypeError(f"svi_options: expected a dict, got {type(svi_options).__name__}")
    unknown = sorted(set(svi_options) - set(SVI_DEFAULTS))
    if unknown:
        raise ValueError(f"svi_options: expected keys among {sorted(SVI_DEFAULTS)}, got unknown {unknown}")
    opts = {**SVI_DEFAULTS, **svi_options}
    opts["num_steps"] = _int_option(opts, "num_steps", 1)
    opts["newton_steps"] = _int_option(opts, "newton_steps", 0)
    for key in ("warmup", "check_every"):
        if opts[key] is not None:
            opts[key] = _int_option(opts, key, 0 if key == "warmup" else 1)
    for key in ("learning_rate", "tol"):
        v = opts[key]
        if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"svi_options['{key}']: expected a positive finite number, got {v!r}")
        opts[key] = float(v)
    if opts["warmup"] is not None and opts["warmup"] >= opts["num_steps"]:
        raise ValueError(
            f"svi_options['warmup']: expected fewer steps than num_steps={opts['num_steps']}, "
            f"got {opts['warmup']}"
        )
    return opts


def _resolved(problem, opts) -> dict:
    """Defaults that depend on the data: warmup and the window (one epoch)."""
    opts = dict(opts)
    if opts["warmup"] is None:
        opts["warmup"] = opts["num_steps"] // 20
    if opts["check_every"] is None:
        epoch = max((math.ceil(size / b) for _, size, b in problem.subsample), default=1)
        opts["check_every"] = max(epoch, 25)
    opts["check_every"] = min(opts["check_every"], opts["num_steps"])
    return opts


def schedule(opts):
    """Linear warmup from 0 to ``learning_rate``, then cosine decay to ``END_FACTOR`` of it."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=opts["learning_rate"],
        warmup_steps=opts["warmup"],
        decay_steps=opts["num_steps"],
        end_value=opts["learning_rate"] * END_FACTOR,
    )


def _program(problem, opts):
    pr = problem.static()
    key = (
        *pr.structure_key,
        "svi",
        opts["learning_rate"],
        opts["num_steps"],
        opts["warmup"],
        opts["check_every"],
    )

    def build():
        args, kwargs = problem.rebuild(problem.data)
        return npa.svi_program(
            npa.subsampled_model(problem.require_model()),
            pr.sites,
            pr.layout,
            pr.rebuild,
            optax.adam(schedule(opts)),
            opts["check_every"],
            args,
            kwargs,
        )

    return cache.get_or_build(key, build)


def _judge(problem):
    """``(z, data) -> (value, gradient, Hessian, λ², positive definite)`` on the full data."""
    pr = problem.static()
    chunk = hess_chunk(problem.nobs, problem.layout.size)

    def build():
        def run(z, data):
            f, g, h = evaluate(lambda zz: pr.negloglik(zz, data), z, chunk)
            bad = ~jnp.all(jnp.isfinite(h))
            _, lam, _, gt = eig_scaled(g, jnp.where(bad, 0.0, h))
            dec2, pd = decrement(lam, gt)
            return f, g, h, dec2, pd & ~bad

        return jax.jit(run)

    return cache.get_or_build((*pr.structure_key, "svi-judge", chunk), build)


def _at_point(problem):
    """Estimate, Jacobians and deterministic sites at a given z (no optimization)."""
    pr = problem.static()

    def build():
        return jax.jit(after_fit(pr))

    return cache.get_or_build((*pr.structure_key, "at-point"), build)


def fit_svi(problem, z0, key, opts: dict, tol: float):
    """Run the stochastic phase and the full-data finish.

    Returns the compiled-program tuple ``(OptResult, theta, jac, det, jac_det)`` and a
    dict describing the run (for ``res.svi`` and the message).
    """
    opts = _resolved(problem, opts)
    if problem.subsample:
        args, kwargs = problem.rebuild(problem.data)
        user_model = npa.subsampled_model(problem.require_model())
        frozen = npa.frozen_minibatches(user_model, args, kwargs, [s[0] for s in problem.subsample])
        if frozen:
            raise ValueError(
                f"plate(s) {frozen} draw the same minibatch whatever the random key (is the model "
                "wrapped in handlers.seed?): expected a model that SVI can seed, so that each step "
                "sees a new minibatch; remove handlers.seed, or fit every row with method='newton'"
            )
    prog = _program(problem, opts)
    judge = _judge(problem)
    state = prog.init(jnp.asarray(z0, jnp.float64), jax.random.fold_in(key, 104729))
    windows = math.ceil(opts["num_steps"] / prog.steps)
    history, stop = [], "budget"
    z = jnp.asarray(z0, jnp.float64)
    lam = math.inf
    for w in range(windows):
        state, losses, z = prog.window(state, problem.data)
        f, g, h, dec2, pd = jax.device_get(judge(z, problem.data))
        lam = math.sqrt(float(dec2)) if bool(pd) and np.isfinite(dec2) else math.inf
        history.append(((w + 1) * prog.steps, float(np.mean(losses)), float(f), lam))
        if lam <= opts["tol"]:
            stop = "tol"
            break
    steps = len(history) * prog.steps
    z_svi = np.asarray(z)
    info = dict(
        steps=steps,
        num_steps=opts["num_steps"],
        learning_rate=opts["learning_rate"],
        warmup=opts["warmup"],
        check_every=prog.steps,
        tol=opts["tol"],
        stop=stop,
        decrement_svi=lam,
        z_svi=z_svi,
        newton_steps=0,
        batches=tuple(problem.subsample),
        history=np.array(history, dtype=np.float64).reshape(-1, 4),
    )
    if opts["newton_steps"] > 0 and np.all(np.isfinite(z_svi)):
        out = fit_program(problem, "newton", opts["newton_steps"], tol)(problem.data, jnp.asarray(z_svi), 1.0)
        out = jax.device_get(out)
        info["newton_steps"] = int(out[0].n_newton)
        return (out[0]._replace(n_lbfgs=np.int32(steps)), *out[1:]), info
    # the stochastic estimate as it is, judged by its full-data decrement
    f, g, h, dec2, pd = jax.device_get(judge(jnp.asarray(z_svi), problem.data))
    if not (np.isfinite(f) and np.all(np.isfinite(g))):
        status = Status.NONFINITE_START
    elif not bool(pd):
        status = Status.NOT_POSITIVE_DEFINITE
    else:
        status = Status.STOCHASTIC if lam <= opts["tol"] else Status.MAX_STEPS
    zero = np.int32(0)
    opt = OptResult(z_svi, f, g, h, dec2, zero, np.int32(steps), np.int32(status))
    rest = jax.device_get(_at_point(problem)(jnp.asarray(z_svi), problem.data))
    return (opt, *rest), info


def svi_note(info: dict, opt) -> str:
    """How the stochastic fit ran and how its optimization error was judged (for ``res.message``)."""
    batches = info["batches"]
    data = (
        "minibatches of " + ", ".join(f"{b} of {size} rows (plate '{name}')" for name, size, b in batches)
        if batches
        else "the full data each step (no subsampled plate)"
    )
    why = (
        f"stopped at the tolerance λ ≤ {info['tol']:g}"
        if info["stop"] == "tol"
        else f"step budget spent with λ > {info['tol']:g}"
    )
    text = (
        f"stochastic fit (SVI, AutoDelta guide on the prior-free model, Adam, {data}): "
        f"{info['steps']} of {info['num_steps']} steps, {why}; the full-data Newton decrement at "
        f"the SVI estimate is λ = {info['decrement_svi']:.3g} (its distance to the exact maximum "
        "in standard errors)"
    )
    if info["newton_steps"]:
        lam = math.sqrt(max(float(opt.decrement2), 0.0)) if np.isfinite(opt.decrement2) else math.inf
        text += f"; then {info['newton_steps']} exact Newton step(s) on the full data: λ = {lam:.3g}"
    return text


def check_supported(problem) -> None:
    """Refuse what SVI with a delta guide cannot do exactly."""
    if problem.random is not None:
        raise ValueError(
            "method: expected a method other than 'svi' with random=[...] (sites integrated out)"
        )
    if problem.sites.discrete:
        names = [d[0] for d in problem.sites.discrete]
        raise ValueError(
            f"method: expected a method other than 'svi' for a model with discrete latent sites {names} "
            "(they are summed out exactly by the other methods)"
        )
