"""Trust-region Newton with the exact AD Hessian, in Jacobi-scaled coordinates.

Written by hand because neither optax nor optimistix offers a Hessian-based
*minimiser* with an eigenvalue-modified step and a trust region that rejects
non-finite trial points (optimistix's ``Newton`` is a root finder and would
happily converge to a saddle or a maximum). It converges quadratically and
gives the Hessian at the optimum for free, which the standard errors need.

Globalization (measured on the 27 NIST StRD nonlinear regressions fitted as
Gaussian likelihoods with a free log σ from both published starts; the earlier
single-phase version solved 38 of the 54 fits, this one all 54, Lanczos1 to its
rounding-noise floor):

* Far from the optimum the joint Hessian in (b, log σ) is indefinite whenever
  the residual sum of squares exceeds about twice its minimum (the Schur
  complement of the log σ block is 4·RSS* − 2·RSS), so most of the path runs on
  indefinite Hessians. Following their negative curvature led the exact model
  into the discontinuity of Roszman1 (start 1, arctan pole) and onto the merged-
  exponential saddles of Lanczos1–3 (start 2), where the radius collapsed. The
  first phase therefore uses the *saddle-free* model: the eigenvalues of the
  scaled Hessian replaced by their absolute values (a positive-definite model
  that moves downhill along negative curvature), with the actual Hessian still
  predicting the decrease for the trust-region ratio.
* If that phase stalls (collapsed radius, stagnation, or half the solver's own
  budget), a second phase restarts from ``z0`` with the exact model and the
  exact Moré–Sorensen subproblem, hard case included. MGH09 (start 1) needs it:
  the saddle-free phase drifts to its optimum at infinity (b₂ → −∞).
* The first radius is the full Newton step, capped at ``FIRST_RADIUS`` scaled
  units (about one local standard error) when the Hessian at the start is
  indefinite, and grows 4-fold per good step; a
  rejected trial costs one function value.
* The step budget is the solver's own (``DEFAULT_MAX_STEPS``); the slowest fits
  took 1583 accepted steps (MGH09 start 1, both phases), 1099 (Bennett5 start 2)
  and 870 (MGH10 start 1). The loop also stops when the objective stagnates.
* Near the optimum steps are judged by the Newton decrement, not by
  differences of ``f`` at its rounding-noise level (see :func:`newton`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..core.status import Status
from .linalg import EIG_RTOL, decrement, eig_scaled, evaluate

__all__ = [
    "NewtonState",
    "newton",
    "trust_region_step",
    "NEAR_TOL",
    "DEFAULT_MAX_STEPS",
    "FIRST_RADIUS",
    "STAGNATION_WINDOW",
]

# Below λ²/2 ≤ max(tol, NEAR_TOL) at a positive-definite Hessian the point is
# ≤ 1.4e-4 standard errors from the optimum, normally in Newton's quadratic region.
# There the loop takes full Newton ("polish") steps, judged by the decrement at the
# new point: a step that does not lower it is undone. With 1e-10 the trust region
# of Lanczos2 (start 2, [σ, b] order) collapsed at λ²/2 = 3e-10, where f's
# rounding noise (~1e-9: residual SD 1e-6 against a model rounding of 3e-16)
# exceeds the predicted decrease; polishing from there converged.
NEAR_TOL = 1e-8
# Accepted steps when the caller gives no budget. Each step costs one Hessian;
# the slowest NIST StRD fit (MGH17, start 1) took ~2100.
DEFAULT_MAX_STEPS = 10_000
# Stop when this many accepted steps lower f by less than STAGNATION_DECREASE
# (log-likelihood units). The saddle-free phase on MGH09 (start 1) drifted towards
# an optimum at infinity, gaining 6e-4 from step 1000 to 1500 and 1e-4 from 1500 to
# 2000; the slowest genuine approach (Bennett5, start 2) gained 0.45 per 500 steps.
STAGNATION_WINDOW = 500
STAGNATION_DECREASE = 1e-3
# A stagnant window ending at a positive-definite Hessian with λ²/2 ≤ NOISE_TOL is
# the rounding-noise floor of the objective (Status.NOISE_FLOOR): on Lanczos1
# (residual SD 8e-14, the model's own rounding error 3e-16 per point) λ²/2 stays
# at 1e-5–1e-3 while the parameters are exact to 3e-11.
NOISE_TOL = 1e-2
# Cap on the first trust radius at an indefinite start (scaled eigen-coordinates,
# i.e. roughly local standard errors): the modified Newton step can be astronomically long,
# and with a cap of 1e3 the first step of Lanczos3 (start 1) reached a permuted
# (equivalent) optimum and Roszman1's first step crossed its pole.
FIRST_RADIUS = 1.0
# Consecutive full Newton steps at near-converged points before polishing stops.
MAX_POLISH = 4
# Polishing continues below tol until λ²/2 ≤ POLISH_FLOOR·tol or λ² stops falling
# 100-fold per step: Misra1c (start 2) met tol = 1e-12 at λ²/2 = 1.4e-13 after one
# polish step, which left the MLE σ² (= RSS/n) off by 1e-7 relative.
POLISH_FLOOR = 1e-6


class NewtonState(NamedTuple):
    """Loop state of :func:`newton` (``f, g, h`` are at ``z`` once ``fresh`` is False)."""

    z: jax.Array
    f: jax.Array
    g: jax.Array
    h: jax.Array
    k: jax.Array  # accepted steps
    it: jax.Array  # trial steps
    delta: jax.Array  # trust radius (scaled eigen-coordinates)
    fresh: jax.Array  # z was just accepted: f, g, h must be evaluated there
    status: jax.Array
    polish: jax.Array  # full Newton steps taken from near-converged points
    polished: jax.Array  # z was reached by such a step
    dec2: jax.Array  # λ² at the previous evaluated point (inf before the first)
    f_ref: jax.Array  # f at the start of the current stagnation window
    k_ref: jax.Array  # accepted steps at the start of that window
    z_ref: jax.Array  # z at the start of that window
    exact: jax.Array  # second phase: the model's own curvature (else |λ|, saddle-free)
    first: NewtonResult  # where the saddle-free phase ended (the fallback result)
    prev: NewtonResult  # where the last polish step started
    skip_polish: jax.Array  # a polish step from z was reverted


class NewtonResult(NamedTuple):
    z: jax.Array
    f: jax.Array
    g: jax.Array
    h: jax.Array
    status: jax.Array


def trust_region_step(lam, gt, delta, absolute=False):
    """Trust-region step in the scaled eigenbasis: argmin m(s) s.t. ‖s‖ ≤ delta.

    Solves the secular equation 1/‖s(μ)‖ = 1/delta by Newton's method on μ
    (Moré & Sorensen 1983) with s(μ) = −gt/(λ+μ), μ ≥ max(0, −λ_min). In the
    hard case (H indefinite and ‖s(−λ_min)‖ < delta, i.e. the gradient has
    (almost) no component along the most negative curvature direction) the
    step is completed to the boundary along that eigenvector.
    Returns the step (eigen-coordinates), its norm and the predicted change.
    """
    lam_true = lam
    lam_max = jnp.max(jnp.abs(lam), initial=0.0)
    tiny = 1e-14 * lam_max + 1e-300
    lam = jnp.where(absolute, jnp.maximum(jnp.abs(lam), EIG_RTOL * lam_max), lam)
    pd = lam[0] > EIG_RTOL * lam_max
    mu_low = jnp.where(pd, 0.0, jnp.maximum(0.0, -lam[0]) + tiny)

    def norm(mu):
        return jnp.sqrt(jnp.sum((gt / jnp.maximum(lam + mu, tiny)) ** 2))

    def secular(_, mu):
        den = jnp.maximum(lam + mu, tiny)
        psi = jnp.sqrt(jnp.sum((gt / den) ** 2))
        dpsi = -jnp.sum(gt**2 / den**3) / jnp.maximum(psi, 1e-300)
        phi = 1.0 / jnp.maximum(psi, 1e-300) - 1.0 / delta
        dphi = -dpsi / jnp.maximum(psi, 1e-300) ** 2
        step = jnp.where((phi < 0) & (dphi > 0), -phi / dphi, 0.0)
        return mu + jnp.where(jnp.isfinite(step), step, 0.0)

    n_low = norm(mu_low)
    mu = jnp.where(n_low > delta, jax.lax.fori_loop(0, 40, secular, mu_low), mu_low)
    st = -gt / jnp.maximum(lam + mu, tiny)
    # hard case: fill the remaining radius along the most negative curvature direction
    hard = (~pd) & (n_low <= delta) & jnp.isfinite(delta)
    tau = jnp.sqrt(jnp.maximum(delta**2 - jnp.sum(st**2), 0.0))
    sign = jnp.where(gt[0] > 0, -1.0, 1.0)
    st = st.at[0].add(jnp.where(hard, sign * tau, 0.0))
    pred = jnp.sum(gt * st) + 0.5 * jnp.sum(lam_true * st**2)
    return st, jnp.sqrt(jnp.sum(st**2)), pred


def newton(
    fun: Callable, z0, *, max_steps: int | None = None, tol: float, chunk: int | None = None
) -> NewtonState:
    """Trust-region Newton from ``z0`` until the decrement test, stagnation or the step budget.

    Each pass of the loop evaluates (f, g, H) at a newly accepted point (the
    Hessian code appears once in the compiled program), tests convergence
    there, and otherwise tries one step; the returned ``h`` is always the
    Hessian at the returned ``z``.

    Far from the optimum a trust-region trial point is accepted when it is
    finite and achieves at least 1e-4 of the predicted decrease; otherwise the
    radius shrinks and the same Hessian is reused. At a near-converged point
    (positive-definite H, ``λ²/2 ≤ max(tol, NEAR_TOL)``) the full Newton step is
    taken whatever ``f`` does there, since such differences are at the level of
    the rounding noise of ``f`` (a true 1.2e-11 decrease was once rejected
    against 9.5e-13 of noise; on Misra1c f varied by 4e-12 at |f| = 21): the
    decrement at the new point decides, and a step that does not lower it is
    undone. Convergence is declared where ``λ²/2 ≤ tol`` after such a step,
    once polishing reaches ``POLISH_FLOOR·tol`` or stops paying.

    Stops without convergence: ``MAX_STEPS`` (budget spent, whatever the
    Hessian), ``STALLED`` (collapsed radius or stagnation; reported as
    ``NOT_POSITIVE_DEFINITE`` by :func:`~mleppl.solvers.minimize.minimize` when
    the Hessian there is indefinite), ``NOISE_FLOOR`` (stagnation at a
    positive-definite Hessian with ``λ²/2 ≤ NOISE_TOL`` within one standard
    error of where the window began). If both phases fail, the end point with
    the lower objective is returned.

    Parameters
    ----------
    fun : callable
        Objective of one flat vector.
    z0 : array
        Start.
    max_steps : int, optional
        Accepted-step budget for both phases together; ``None`` means
        :data:`DEFAULT_MAX_STEPS`, of which the first phase may use half.
    tol : float
        Convergence tolerance on ``λ²/2``.
    chunk : int, optional
        Hessian directions per batch (see :func:`mleppl.solvers.linalg.hessian`).

    Returns
    -------
    NewtonState
        The final state; ``status`` is a :class:`~mleppl.core.status.Status` code.
    """
    # with the solver's own budget the saddle-free phase may use half of it and the
    # exact phase restarts after it; a caller's budget is for both phases together
    restart_on_budget = max_steps is None
    max_steps = DEFAULT_MAX_STEPS if max_steps is None else int(max_steps)
    budget0 = max_steps // 2 if restart_on_budget else max_steps
    max_iter = 20 * max_steps + 200
    p = z0.shape[0]
    near_tol = max(tol, NEAR_TOL)

    nan = jnp.asarray(jnp.nan, z0.dtype)

    def restartable(status):
        return (status == Status.STALLED) | ((status == Status.MAX_STEPS) & restart_on_budget)

    def body(s: NewtonState) -> NewtonState:
        f, g, h = jax.lax.cond(s.fresh, lambda zz: evaluate(fun, zz, chunk), lambda zz: (s.f, s.g, s.h), s.z)
        # a point reached by a polish step must lower the decrement; otherwise the step
        # was lost in rounding noise and the loop goes back to where it started
        _, lam1, _, gt1 = eig_scaled(g, jnp.where(jnp.all(jnp.isfinite(h)), h, 0.0))
        dec2_1, pd1 = decrement(lam1, gt1)
        improved = pd1 & (dec2_1 < s.dec2) & jnp.isfinite(f) & jnp.all(jnp.isfinite(h))
        revert = s.polished & s.fresh & ~improved
        z_at, f, g, h = jax.tree.map(
            lambda a, b: jnp.where(revert, a, b), (s.prev.z, s.prev.f, s.prev.g, s.prev.h), (s.z, f, g, h)
        )
        bad_start = (s.it == 0) & ~(jnp.isfinite(f) & jnp.all(jnp.isfinite(g)))
        bad_hess = ~jnp.all(jnp.isfinite(h))
        dsc, lam, v, gt = eig_scaled(g, jnp.where(bad_hess, 0.0, h))
        dec2, pd = decrement(lam, gt)
        near = pd & (0.5 * dec2 <= near_tol) & ~bad_hess
        # converged after a polish step that met tol and either reached far below it or
        # stopped improving the decrement (its noise floor)
        settled = (0.5 * dec2 <= POLISH_FLOOR * tol) | (dec2 > 0.01 * s.dec2) | (s.polish >= MAX_POLISH)
        done = (
            near
            & (0.5 * dec2 <= tol)
            & ((s.polished & settled) | (dec2 == 0) | revert | (s.polish >= MAX_POLISH))
        )
        polish = near & ~done & ~revert & ~s.skip_polish & (s.polish < MAX_POLISH)
        ended = (s.status == Status.MAX_STEPS) | (s.status == Status.STALLED)
        final = ended | bad_start | bad_hess  # no step from here
        # first pass: the full (modified) Newton step, capped, is the first radius
        _, n_full, _ = trust_region_step(lam, gt, jnp.inf)
        # (uncapped at a positive-definite start: a quadratic is solved in one step)
        capped = jnp.where(pd, n_full, jnp.minimum(n_full, FIRST_RADIUS))
        first = jnp.where(jnp.isfinite(n_full) & (n_full > 0), capped, 1.0)
        # after a reverted polish step: a trust-region step a quarter of its length
        delta_in = jnp.where(s.it == 0, first, jnp.where(revert, 0.25 * s.delta, s.delta))
        delta_in = jnp.where(polish, jnp.inf, delta_in)
        st, snorm, pred = trust_region_step(lam, gt, delta_in, absolute=~s.exact)
        z_try = z_at + dsc * (v @ st)
        f_try = fun(z_try)
        slack = 8 * jnp.finfo(f_try.dtype).eps * jnp.abs(f)
        actual = f - f_try
        # a polish step is ≤ 1.4e-5 standard errors long and predicts a decrease ≤ NEAR_TOL:
        # any change of f it causes is at the level of f's rounding noise (4e-12 on
        # Misra1c at |f| = 21, i.e. 900 ulps), so only a finite f is asked of it
        sufficient = polish | (actual >= -1e-4 * pred - slack)
        ok = (
            (~done) & (~final) & jnp.isfinite(f_try) & sufficient & (pred <= 0) & jnp.all(jnp.isfinite(z_try))
        )
        # a rejected polish step at a point that already meets tol: converged there
        done = done | (polish & ~ok & (0.5 * dec2 <= tol))
        rho = actual / jnp.where(pred < 0, -pred, 1.0)
        delta_tr = jnp.where(
            ok,
            jnp.where((rho > 0.75) & (snorm >= 0.99 * delta_in), 4.0 * delta_in, delta_in),
            jnp.where(jnp.isfinite(f_try) & (actual > -jnp.abs(pred)), 0.25, 0.1)
            * jnp.minimum(delta_in, snorm),
        )
        delta = jnp.where(polish, jnp.maximum(s.delta, snorm), delta_tr)
        k = s.k + ok.astype(jnp.int32)
        it = s.it + 1
        # stagnation: a window of accepted steps that lowered f by less than STAGNATION_DECREASE;
        # at a positive-definite Hessian with a small decrement that is the noise floor
        window_end = ok & (k - s.k_ref >= STAGNATION_WINDOW)
        stagnant = window_end & (s.f_ref - f_try <= jnp.maximum(tol, STAGNATION_DECREASE))
        # ... if the window also stayed within one standard error (under the current H) of
        # where it began; a drift towards an optimum at infinity moves many
        dz = z_at - s.z_ref
        noise_floor = stagnant & pd & (0.5 * dec2 <= NOISE_TOL) & (dz @ (h @ dz) <= 1.0)
        collapsed = (~ok) & ~polish & ((delta_tr <= 1e-15 * (1.0 + snorm)) | (it >= max_iter))
        noise_floor = noise_floor | (collapsed & pd & (0.5 * dec2 <= NOISE_TOL))
        f_ref = jnp.where(window_end | (s.it == 0), jnp.where(s.it == 0, f, f_try), s.f_ref)
        k_ref = jnp.where(window_end, k, s.k_ref)
        z_ref = jnp.where(window_end | (s.it == 0), jnp.where(s.it == 0, z_at, z_try), s.z_ref)
        polish_failed = polish & ~ok & ~done & (s.polish + 1 >= MAX_POLISH)
        status = jnp.where(collapsed | polish_failed | stagnant, Status.STALLED, Status.RUNNING)
        status = jnp.where(noise_floor, Status.NOISE_FLOOR, status)
        status = jnp.where(ok & (k >= jnp.where(s.exact, max_steps, budget0)), Status.MAX_STEPS, status)
        status = jnp.where(ended, s.status, status)
        status = jnp.where(bad_hess, Status.NOT_POSITIVE_DEFINITE, status)
        status = jnp.where(done, Status.CONVERGED, status)
        status = jnp.where(bad_start, Status.NONFINITE_START, status)
        # on MAX_STEPS or STALLED after an accepted step the new point has no Hessian yet:
        # the loop evaluates it once more (and reports from there)
        # a stagnant window ends at the last evaluated point (its Hessian is known)
        ok = ok & ~stagnant
        k = k - stagnant.astype(jnp.int32)
        z = jnp.where(ok, z_try, z_at)
        prev = jax.tree.map(
            lambda a, b: jnp.where(polish & ok, a, b), NewtonResult(z_at, f, g, h, s.status), s.prev
        )
        # the saddle-free phase ended without converging: keep its end point (evaluated
        # in this pass) and start the exact phase from z0
        restart = ended & ~s.exact & restartable(s.status)
        first_res = jax.tree.map(
            lambda a, b: jnp.where(restart, a, b), NewtonResult(z_at, f, g, h, s.status), s.first
        )
        new = NewtonState(
            z,
            f,
            g,
            h,
            k,
            it,
            delta,
            ok,
            status.astype(jnp.int32),
            jnp.where(near | revert, s.polish + polish.astype(jnp.int32), 0),
            ok & polish,
            jnp.where(s.fresh, dec2, s.dec2),
            f_ref,
            k_ref,
            z_ref,
            s.exact,
            first_res,
            prev,
            (s.skip_polish | revert) & ~ok,
        )
        fresh_start = s0._replace(k=k, exact=jnp.asarray(True), first=first_res, prev=s.prev)
        return jax.tree.map(lambda a, b: jnp.where(restart, a, b), fresh_start, new)

    def cond(s: NewtonState):
        ended = (s.status == Status.MAX_STEPS) | (s.status == Status.STALLED)
        return (s.status < 0) | (ended & (s.fresh | (~s.exact & restartable(s.status))))

    s0 = NewtonState(
        z=z0,
        f=nan,
        g=jnp.full((p,), jnp.nan, z0.dtype),
        h=jnp.full((p, p), jnp.nan, z0.dtype),
        k=jnp.asarray(0, jnp.int32),
        it=jnp.asarray(0, jnp.int32),
        delta=jnp.asarray(1.0, z0.dtype),
        fresh=jnp.asarray(True),
        status=jnp.asarray(Status.RUNNING, jnp.int32),
        polish=jnp.asarray(0, jnp.int32),
        polished=jnp.asarray(False),
        dec2=jnp.asarray(jnp.inf, z0.dtype),
        f_ref=nan,
        k_ref=jnp.asarray(0, jnp.int32),
        z_ref=z0,
        exact=jnp.asarray(False),
        first=NewtonResult(
            z0,
            nan,
            jnp.full((p,), jnp.nan, z0.dtype),
            jnp.full((p, p), jnp.nan, z0.dtype),
            jnp.asarray(Status.RUNNING, jnp.int32),
        ),
        prev=None,
        skip_polish=jnp.asarray(False),
    )
    s0 = s0._replace(prev=s0.first)
    s = jax.lax.while_loop(cond, body, s0)
    # both phases failed: report the better end point (its Hessian was evaluated there)
    use_first = (
        s.exact & (s.status != Status.CONVERGED) & (s.first.status != Status.RUNNING) & (s.first.f < s.f)
    )
    pick = jax.tree.map(
        lambda a, b: jnp.where(use_first, a, b), s.first, NewtonResult(s.z, s.f, s.g, s.h, s.status)
    )
    return s._replace(z=pick.z, f=pick.f, g=pick.g, h=pick.h, status=pick.status)
