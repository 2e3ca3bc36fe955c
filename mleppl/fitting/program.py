"""The compiled fitting program of a problem: optimizer, Hessian and Jacobians in one XLA program."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..core import cache, options
from ..model import latent
from ..solvers.batched import FAST_MAX_STEPS, line_search_newton, pooled_line_search_newton
from ..solvers.minimize import minimize

__all__ = [
    "after_fit",
    "fit_program",
    "many_program",
    "pool_program",
    "pool_lanes",
    "POOL_BLOCK",
    "bounded_mask",
    "batch_negloglik",
    "conditional_program",
    "resolve_method",
    "METHODS",
]

METHODS = options.METHODS
# Newton's cost per step grows like nobs·p² (the Hessian), L-BFGS's like nobs·p:
# below this budget exact Newton is as cheap as anything and the most robust.
_NEWTON_BUDGET = 5e7
# Above this many (observation × direction) tangent values the Hessian is computed in
# chunks of directions, bounding its memory to ~ _HESS_TANGENTS × 8 bytes per array.
HESS_TANGENTS = 1e7


def resolve_method(method: str, nobs: int, p: int, subsampled: bool = False) -> str:
    """The method ``"auto"`` stands for: ``"svi"`` for a model whose plates subsample,
    else Newton when ``nobs · p²`` is small, else L-BFGS with a Newton finish."""
    if method != "auto":
        return method
    if subsampled:
        return "svi"
    return "newton" if nobs * max(p, 1) ** 2 <= _NEWTON_BUDGET else "lbfgs-newton"


def hess_chunk(nobs: int, p: int) -> int | None:
    """Directions per Hessian chunk (None: all at once)."""
    return None if nobs * p <= HESS_TANGENTS else max(1, int(HESS_TANGENTS // max(nobs, 1)))


def batch_negloglik(problem):
    """The negative log-likelihood at a batch of points z, for the diagnosis (compiled on first
    need), in chunks of points so that points × observations stays near ``HESS_TANGENTS``
    (the ray test probes ~150 points: vmapped all at once that was 2.1 GB at 10⁶ rows)."""
    per = max(1, int(HESS_TANGENTS // max(problem.nobs, 1)))

    def build():
        pr = problem.static()

        def many(zs, data):
            return jax.lax.map(lambda z: pr.negloglik(z, data), zs, batch_size=per)

        return cache.jit(many, hoist=pr.constants, name="batch_negloglik")

    return cache.get_or_build((*problem.structure_key, "batch-nll"), build)


def conditional_program(problem):
    """``(z, data) -> (theta, sd, cov, jac)``: the random effects' conditional modes and SDs
    at z (:func:`mleppl.model.latent.conditional`), compiled and cached per structure."""
    pr = problem.static()
    return cache.get_or_build(
        (*pr.structure_key, "conditional"),
        lambda: cache.jit(
            lambda zz, data: latent.conditional(pr, zz, data), hoist=pr.constants, name="conditional"
        ),
    )


def bounded_mask(layout) -> np.ndarray:
    """Per unconstrained coordinate: does it belong to a site with a bounded support."""
    parts = [np.full(math.prod(s.unconstrained_shape), s.bounded, dtype=bool) for s in layout.sites]
    return np.concatenate(parts) if parts else np.zeros(0, bool)


def after_fit(pr):
    """``(z, data) -> (theta, jacobian, det, det_jacobian)`` at a fit's end point (traceable)."""
    layout = pr.layout
    has_det = bool(pr.sites.deterministic)

    def post(z, data):
        theta, jac = layout.theta(z), jax.jacfwd(layout.theta)(z)
        if has_det:
            flat_det = lambda zz: pr.deterministic(zz, data)  # noqa: E731
            det, jac_det = flat_det(z), jax.jacfwd(flat_det)(z)
        else:
            det, jac_det = jnp.zeros((0,)), jnp.zeros((0, z.shape[0]))
        return theta, jac, det, jac_det

    return post


def _single_fit(pr, method: str, max_steps: int | None, tol: float, chunk: int | None):
    """``run(data, z0, scale) -> (OptResult, theta, jacobian, det, det_jacobian)`` (traceable).

    ``method="fast"``: the line-search Newton of :mod:`mleppl.solvers.batched` (for
    ``fit_many``; lanes it gives up are refitted with ``"newton"``)."""
    bounded = bounded_mask(pr.layout)
    post = after_fit(pr)

    def run(data, z0, scale):
        fun = lambda z: pr.negloglik(z, data)  # noqa: E731
        if method == "fast":
            steps = FAST_MAX_STEPS if max_steps is None else min(max_steps, FAST_MAX_STEPS)
            res = line_search_newton(fun, z0, tol=tol, max_steps=steps, chunk=chunk, bounded=bounded)
        else:
            res = minimize(
                fun, z0, method=method, scale=scale, max_steps=max_steps, tol=tol, hess_chunk=chunk
            )
        return (res, *post(res.z, data))

    return run


def fit_program(problem, method: str, max_steps: int | None, tol: float, batched: bool = False):
    """The compiled fit for this model, data structure and options (cached).

    ``program(data, z0, scale) -> (OptResult, theta, jacobian, det, det_jacobian)``;
    ``batched``: the same program vmapped over a batch of starts (``n_starts``).
    """
    p = problem.layout.size
    chunk = hess_chunk(problem.nobs, p)
    key = (*problem.structure_key, "fit", method, max_steps, tol, batched, chunk)

    def build():
        run = _single_fit(problem.static(), method, max_steps, tol, chunk)
        return cache.jit(
            jax.vmap(run, in_axes=(None, 0, None)) if batched else run, hoist=problem.constants, name="fit"
        )

    return cache.get_or_build(key, build)


def many_program(problem, method: str, max_steps: int | None, tol: float, data_axes: tuple, z_axis=None):
    """The fit vmapped over datasets: ``data_axes`` says which data arrays carry the batch
    axis (0) and which are shared (None); ``z_axis`` the same for the start (None: one start
    for all fits; 0: one per fit). ``method="fast"``: the line-search Newton that
    ``fit_many`` runs first."""
    p = problem.layout.size
    chunk = hess_chunk(problem.nobs, p)
    key = (*problem.structure_key, "many", method, max_steps, tol, data_axes, z_axis, chunk)

    def build():
        run = _single_fit(problem.static(), method, max_steps, tol, chunk)
        return cache.jit(
            jax.vmap(run, in_axes=(data_axes, z_axis, None)), hoist=problem.constants, name="fit_many"
        )

    return cache.get_or_build(key, build)


# Fits in flight in fit_many's pool: about this many (observation × direction) tangent
# values per pass keeps a pass's arrays in cache. Measured on NB2 GLMs (n = 200, p = 4):
# 128 lanes took 2.1–2.4 s for 4,096 fits where 1,024 took 3.5–3.7 s.
POOL_TANGENTS = 1e5
# Pools per call of the pooled program (fits per call = POOL_BLOCK × lanes, the last call
# padded): long enough that the slowest fits' tail is a small part of a call.
POOL_BLOCK = 32


def pool_lanes(nobs: int, p: int, most: int) -> int:
    """Lanes of the pool: the power of two nearest ``POOL_TANGENTS / (nobs·p)``, in [8, most]."""
    want = POOL_TANGENTS / max(nobs * max(p, 1), 1)
    lanes = 1 << max(0, round(math.log2(max(want, 1.0))))
    return int(max(1, min(most, max(8, lanes))))


def pool_program(problem, max_steps: int | None, tol: float, data_axes: tuple, z_axis, lanes: int):
    """``fit_many``'s first stage: the line-search Newton through a pool of ``lanes`` lanes
    (:func:`mleppl.solvers.batched.pooled_line_search_newton`).

    ``program(data, z0, n_fits) -> (OptResult, theta, jacobian, det, det_jacobian)``, batched
    over the B fits of ``data`` (those from ``n_fits`` on are padding and are not run)."""
    p = problem.layout.size
    chunk = hess_chunk(problem.nobs, p)
    key = (*problem.structure_key, "pool", max_steps, tol, data_axes, z_axis, lanes, chunk)

    def build():
        pr = problem.static()
        bounded = bounded_mask(pr.layout)
        post = jax.vmap(after_fit(pr), in_axes=(0, data_axes))
        steps = FAST_MAX_STEPS if max_steps is None else min(max_steps, FAST_MAX_STEPS)

        def run(data, z0, n_fits):
            b = next(x.shape[0] for x, a in zip(data, data_axes) if a == 0)
            z0 = jnp.broadcast_to(z0, (b, z0.shape[-1]))
            res = pooled_line_search_newton(
                pr.negloglik, data, data_axes, z0, n_fits,
                lanes=min(lanes, b), tol=tol, max_steps=steps, chunk=chunk, bounded=bounded,
            )  # fmt: skip
            return (res, *post(res.z, data))

        return cache.jit(run, hoist=problem.constants, name="fit_pool")

    return cache.get_or_build(key, build)
