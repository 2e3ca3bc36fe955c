"""Line-search Newton with the exact Hessian, written to be ``vmap``-ped over many small fits.

``fit_many`` runs thousands of fits of a few parameters in lock step: under
``jax.vmap`` a ``while_loop`` runs until its slowest lane stops, and a
``lax.cond`` evaluates both of its branches for every lane. The trust-region
Newton of :mod:`mleppl.solvers.newton` pays for that: each of its passes
evaluates the Hessian of every lane (also on rejected trial steps), and its
globalization (two phases, stagnation windows, polishing rules) makes the
slowest lane of a chunk long. This solver is the cheap common case:

* each pass evaluates (f, ∇f, H) once at the current point; the step is the
  Newton step in Jacobi-scaled eigen-coordinates (eigenvalues replaced by their
  absolute values where H is indefinite, i.e. a descent direction, kept within
  a radius there by the Levenberg shift of :func:`~mleppl.solvers.newton.trust_region_step`);
* a backtracking line search on f alone (an f evaluation costs about a tenth
  of a Hessian) accepts the first step length with a sufficient (Armijo)
  decrease, and accepts a full step from a near-converged point whatever f does
  there (its change is at the level of f's rounding noise; the decrement at the
  new point decides, as in :func:`mleppl.solvers.newton.newton`);
* a full step that decreased f by more than its quadratic model predicted is
  doubled while f keeps falling (``EXPAND_RATIO``): an objective flattening
  exponentially along the step (a dispersion running to its boundary) is otherwise
  crossed at a constant distance per pass;
* a lane whose coordinate of a bounded site passes ±``BOUNDARY_Z`` stops with status
  ``DIVERGING``;
* it stops after ``max_steps`` passes: a lane that has not converged by then is
  handed back (status ``MAX_STEPS``, ``STALLED`` or ``NONFINITE_START``) for the
  caller to refit with the full trust-region Newton.

:func:`line_search_newton` is one lane (``vmap`` it); :func:`pooled_line_search_newton`
runs many fits through a fixed pool of lanes, a finished fit's lane taking the next fit,
so that a batch costs the passes its fits need rather than its size times the slowest
fit's passes. Both step with :func:`fast_step` from :func:`fast_init`.

The convergence test is that of :func:`mleppl.solvers.minimize.minimize`: at a
point reached by a full Newton step from a near-converged point
(``λ²/2 ≤ max(tol, NEAR_TOL)``), the Hessian is positive definite and
``λ²/2 ≤ tol``; the returned Hessian is the one at the returned point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..core.status import Status
from .linalg import decrement, eig_scaled, evaluate
from .minimize import OptResult
from .newton import FIRST_RADIUS, MAX_POLISH, NEAR_TOL, trust_region_step

__all__ = [
    "line_search_newton",
    "pooled_line_search_newton",
    "fast_step",
    "fast_init",
    "FAST_MAX_STEPS",
    "INDEFINITE_RADIUS",
    "BOUNDARY_Z",
]

# Passes before a lane is handed back to the trust-region Newton. Measured on 400
# NB2 GLMs (n = 200, p = 4) from the default start: every converging lane took 5–9
# passes; a lane whose dispersion runs to infinity never converges, and the chunk
# runs as long as its slowest lane, so the cap is kept short.
FAST_MAX_STEPS = 16
# First radius (Jacobi-scaled eigen-coordinates, about local standard errors) of a step
# where the Hessian is indefinite: the absolute-value model can be very flat there. It
# grows 4-fold after each full step that reached it and shrinks to the accepted length.
INDEFINITE_RADIUS = FIRST_RADIUS
# Step halvings (by 4) before the line search gives up: 4⁻²⁰ ≈ 1e-12.
MAX_BACKTRACKS = 20
ARMIJO = 1e-4
# A full Newton step that decreased f by more than EXPAND_RATIO times the quadratic model's
# prediction (λ²/2) is doubled while f keeps decreasing, at most MAX_EXPAND times. That is
# the signature of an objective flattening exponentially along the step (a dispersion
# running to its boundary, a separated coefficient): Newton's step is then a constant
# length per pass (f = c·eᶻ: exactly 1), and such a lane took 29 passes on average (102 at
# most) to meet the convergence test, for 8,700 of 16,090 per-gene NB2 fits. Near a
# minimum the ratio tends to 1 and no step is expanded.
EXPAND_RATIO = 1.1
MAX_EXPAND = 10
# A lane whose unconstrained coordinate of a bounded site (a dispersion, a probability)
# has passed ±BOUNDARY_Z without converging stops with status DIVERGING: the estimate lies
# within e⁻³⁰ ≈ 1e-13 (relative) of the boundary of its support, where the objective is
# flat to working precision along that coordinate and its Hessian singular, so the
# convergence test can no longer be met (the trust-region refit of such lanes took 29
# passes on average to reach the same verdict).
BOUNDARY_Z = 30.0


class FastState(NamedTuple):
    z: jax.Array
    f: jax.Array
    g: jax.Array
    h: jax.Array
    dec2: jax.Array
    k: jax.Array  # passes (Hessian evaluations)
    status: jax.Array
    from_near: jax.Array  # z was reached by a full step from a near-converged point
    polish: jax.Array  # such steps in a row
    delta: jax.Array  # step radius where H is indefinite (scaled eigen-coordinates)


def line_search_newton(
    fun: Callable, z0, *, tol: float, max_steps: int = FAST_MAX_STEPS, chunk=None, bounded=None
):
    """Minimize ``fun`` from ``z0`` by line-search Newton (traceable, one lane; ``vmap`` it).

    Parameters
    ----------
    fun : callable
        Objective of one flat vector (the negative log-likelihood).
    z0 : array
        Start.
    tol : float
        Convergence tolerance on ``λ²/2``.
    max_steps : int
        Passes (each one Hessian) before giving up.
    chunk : int, optional
        Hessian directions per batch (see :func:`mleppl.solvers.linalg.evaluate`).
    bounded : array of bool, optional
        Which coordinates of ``z`` belong to sites with a bounded support (see
        ``BOUNDARY_Z``).

    Returns
    -------
    OptResult
        ``status`` is ``CONVERGED``, or the reason the lane was given up: ``MAX_STEPS``,
        ``STALLED`` (no acceptable step length, or polishing stopped paying),
        ``NONFINITE_START`` or ``DIVERGING`` (a bounded coordinate past ``BOUNDARY_Z``).
    """
    s = jax.lax.while_loop(
        lambda s: s.status == Status.RUNNING,
        lambda s: fast_step(fun, s, tol=tol, max_steps=max_steps, chunk=chunk, bounded=bounded),
        fast_init(z0),
    )
    zero = jnp.asarray(0, jnp.int32)
    return OptResult(s.z, s.f, s.g, s.h, s.dec2, s.k, zero, s.status)


def fast_step(
    fun: Callable, s: FastState, *, tol: float, max_steps: int, chunk=None, bounded=None
) -> FastState:
    """One pass of :func:`line_search_newton` from state ``s`` (traceable, one lane)."""
    near_tol = max(tol, NEAR_TOL)
    z0 = s.z
    f, g, h = evaluate(fun, s.z, chunk)
    finite = jnp.isfinite(f) & jnp.all(jnp.isfinite(g)) & jnp.all(jnp.isfinite(h))
    dsc, lam, v, gt = eig_scaled(jnp.where(finite, g, 0.0), jnp.where(finite, h, 0.0))
    dec2, pd = decrement(lam, gt)
    near = finite & pd & (0.5 * dec2 <= near_tol)
    done = near & (0.5 * dec2 <= tol) & (s.from_near | (dec2 == 0))
    # the Newton step; where H is indefinite, the step of the absolute-value (saddle-free)
    # model within the radius (a Levenberg-shifted step, not a shortened one)
    st, snorm, _ = trust_region_step(lam, gt, jnp.where(pd, jnp.inf, s.delta), absolute=~pd)
    d = dsc * (v @ st)
    slope = jnp.dot(g, d)
    slack = 8 * jnp.finfo(f.dtype).eps * jnp.abs(f)

    def accept(alpha, f_try, z_try):
        finite_try = jnp.isfinite(f_try) & jnp.all(jnp.isfinite(z_try))
        armijo = f_try <= f + ARMIJO * alpha * jnp.minimum(slope, 0.0) + slack
        return finite_try & (near | armijo)

    # One loop over trial step lengths, one objective evaluation per trip (one copy of the
    # model in the compiled program, not three): backtracking from the full step by 4 until
    # the Armijo condition holds, then (where the full step decreased f by more than the
    # quadratic model predicted) doubling while f keeps falling.
    # carry: (trial length, phase 0 backtrack / 1 expand / 2 done, trips in the phase,
    #         accepted length, f there, accepted?)
    one, zero = jnp.asarray(1.0, z0.dtype), jnp.asarray(0, jnp.int32)

    def ls_cond(c):
        return c[1] < 2

    def ls_body(c):
        a, phase, n, a_ok, f_ok, ok = c
        f_a = fun(s.z + a * d)
        # backtracking phase
        good = accept(a, f_a, s.z + a * d)
        expand = good & (a == 1.0) & pd & ~near & (f - f_a > EXPAND_RATIO * 0.5 * dec2)
        gave_up = ~good & (n + 1 >= MAX_BACKTRACKS + 1)
        b_phase = jnp.where(good, jnp.where(expand & (MAX_EXPAND > 0), 1, 2), jnp.where(gave_up, 2, 0))
        b_next = jnp.where(good, 2.0 * a, 0.25 * a)
        b_n = jnp.where(good, 0, n + 1)
        # expansion phase
        better = jnp.isfinite(f_a) & (f_a < f_ok - slack)
        e_phase = jnp.where(better & (n + 1 < MAX_EXPAND), 1, 2)
        back = phase == 0
        return (
            jnp.where(back, b_next, 2.0 * a),
            jnp.where(back, b_phase, e_phase).astype(jnp.int32),
            jnp.where(back, b_n, n + 1).astype(jnp.int32),
            jnp.where(back, jnp.where(good, a, a_ok), jnp.where(better, a, a_ok)),
            jnp.where(back, jnp.where(good, f_a, f_ok), jnp.where(better, f_a, f_ok)),
            jnp.where(back, good, ok),
        )

    _, _, _, alpha, _, ok = jax.lax.while_loop(
        ls_cond, ls_body, (one, zero, zero, one, jnp.asarray(jnp.inf, z0.dtype), jnp.asarray(False))
    )
    polish = jnp.where(near, s.polish + 1, 0)
    k = s.k + 1
    status = jnp.where(ok, Status.RUNNING, Status.STALLED)
    status = jnp.where(near & (polish > MAX_POLISH), Status.STALLED, status)
    status = jnp.where(k >= max_steps, Status.MAX_STEPS, status)
    status = jnp.where(~finite & (s.k == 0), Status.NONFINITE_START, status)
    status = jnp.where(~finite & (s.k > 0), Status.STALLED, status)
    if bounded is not None:
        past = jnp.any(bounded & (jnp.abs(s.z) > BOUNDARY_Z))
        status = jnp.where(past & (s.k > 0), Status.DIVERGING, status)
    status = jnp.where(done, Status.CONVERGED, status)
    move = status == Status.RUNNING
    capped = ~pd & (snorm >= 0.99 * s.delta)
    delta = jnp.where(alpha == 1.0, jnp.where(capped, 4.0 * s.delta, s.delta), alpha * snorm)
    return FastState(
        z=jnp.where(move, s.z + alpha * d, s.z),
        f=f,
        g=g,
        h=h,
        dec2=dec2,
        k=k,
        status=status.astype(jnp.int32),
        from_near=move & near & (alpha == 1.0),
        polish=polish,
        delta=jnp.where(move, delta, s.delta),
    )


def fast_init(z0) -> FastState:
    """The state :func:`line_search_newton` starts from at ``z0``."""
    p = z0.shape[0]
    nan = jnp.asarray(jnp.nan, z0.dtype)
    return FastState(
        z=z0,
        f=nan,
        g=jnp.full((p,), jnp.nan, z0.dtype),
        h=jnp.full((p, p), jnp.nan, z0.dtype),
        dec2=jnp.asarray(jnp.inf, z0.dtype),
        k=jnp.asarray(0, jnp.int32),
        status=jnp.asarray(Status.RUNNING, jnp.int32),
        from_near=jnp.asarray(False),
        polish=jnp.asarray(0, jnp.int32),
        delta=jnp.asarray(INDEFINITE_RADIUS, z0.dtype),
    )


def pooled_line_search_newton(
    fun: Callable,
    data: tuple,
    data_axes: tuple,
    z0,
    n_fits,
    *,
    lanes: int,
    tol: float,
    max_steps: int = FAST_MAX_STEPS,
    chunk=None,
    bounded=None,
) -> OptResult:
    """:func:`line_search_newton` for many fits through a fixed pool of ``lanes`` lanes.

    Under ``vmap`` every lane of a batch runs until the slowest one stops; here a lane
    whose fit stops (converged or handed back) takes the next unstarted fit at once, so the
    cost follows the passes the fits need in total (plus the slowest fit's tail), not the
    batch size times the slowest fit's passes (per-gene NB2: 9.3 passes on average, 16 at
    most in a batch of 1,024).

    Parameters
    ----------
    fun : callable
        ``fun(z, data_one)``: the objective of one fit, given its data.
    data : tuple of arrays
        Every fit's data: the leaves with ``data_axes`` 0 carry the fits along their leading
        axis, those with None are shared.
    z0 : array (B, p)
        One start per fit (B fits, padding included).
    n_fits : int or scalar array
        The fits to run are ``0 .. n_fits − 1`` (≤ B; the rest is padding and is not run).
    lanes : int
        Fits in flight at once (≤ B).

    Returns
    -------
    OptResult
        Batched over the B fits, each as :func:`line_search_newton` returns it (padding
        rows: the untouched start state).
    """
    b = z0.shape[0]
    n_fits = jnp.asarray(n_fits, jnp.int32)

    def one(s, d):
        return fast_step(lambda z: fun(z, d), s, tol=tol, max_steps=max_steps, chunk=chunk, bounded=bounded)

    step = jax.vmap(one, in_axes=(0, data_axes))
    init = jax.vmap(fast_init)

    def gather(idx):
        safe = jnp.clip(idx, 0, b - 1)
        return tuple(jnp.take(x, safe, axis=0) if a == 0 else x for x, a in zip(data, data_axes))

    idle = jnp.asarray(b, jnp.int32)  # the fit index of a lane with no fit (a dump row below)
    first = jnp.arange(lanes, dtype=jnp.int32)
    lane_fit = jnp.where(first < n_fits, first, idle)
    # results of every fit, plus one dump row that idle lanes write to
    out = jax.tree_util.tree_map(lambda v: jnp.concatenate([v, v[:1]]), init(z0))

    def cond(c):
        return jnp.any(c[1] < idle)

    def body(c):
        states, lane_fit, nxt, out = c
        states = step(states, gather(lane_fit))
        fin = (states.status != Status.RUNNING) & (lane_fit < idle)
        row = jnp.where(fin, lane_fit, idle)
        out = jax.tree_util.tree_map(lambda o, v: o.at[row].set(v), out, states)
        new = nxt + jnp.cumsum(fin).astype(jnp.int32) - 1
        new = jnp.where(fin, jnp.where(new < n_fits, new, idle), lane_fit)
        fresh = init(jnp.take(z0, jnp.clip(new, 0, b - 1), axis=0))
        states = jax.tree_util.tree_map(
            lambda a, f: jnp.where(fin.reshape((-1,) + (1,) * (a.ndim - 1)), f, a), states, fresh
        )
        return states, new, nxt + jnp.sum(fin).astype(jnp.int32), out

    states0 = init(jnp.take(z0, jnp.clip(first, 0, b - 1), axis=0))
    _, _, _, out = jax.lax.while_loop(cond, body, (states0, lane_fit, jnp.minimum(n_fits, lanes), out))
    s = jax.tree_util.tree_map(lambda v: v[:b], out)
    zero = jnp.zeros((b,), jnp.int32)
    return OptResult(s.z, s.f, s.g, s.h, s.dec2, s.k, zero, s.status)
