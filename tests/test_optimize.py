"""The optimizer module on its own: exact Hessians, convergence, non-finite regions, status."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mleppl.core.status import Status
from mleppl.solvers.linalg import hessian
from mleppl.solvers.minimize import minimize

CONVERGED, MAX_STEPS, NONFINITE_START = Status.CONVERGED, Status.MAX_STEPS, Status.NONFINITE_START


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def rosenbrock(z):
    return jnp.sum(100.0 * (z[1:] - z[:-1] ** 2) ** 2 + (1.0 - z[:-1]) ** 2)


@pytest.mark.parametrize("chunk", [1, 3, 4, 7])
def test_chunked_hessian_equals_full(chunk):
    z = jnp.linspace(-1.0, 1.5, 7)
    np.testing.assert_allclose(
        # the same products summed in a different order: rounding only
        hessian(rosenbrock, z, chunk),
        jax.hessian(rosenbrock)(z),
        rtol=1e-14,
        atol=1e-12,
    )


@pytest.mark.parametrize("method", ["newton", "lbfgs-newton", "lbfgs"])
def test_rosenbrock_from_the_classic_start(method):
    z0 = jnp.array([-1.2, 1.0, -1.2, 1.0])
    res = jax.jit(lambda z: minimize(rosenbrock, z, method=method, scale=1.0, max_steps=500, tol=1e-14))(z0)
    assert int(res.status) == CONVERGED
    # λ²/2 ≤ 1e-14 at a Hessian with smallest eigenvalue ~0.4 puts z within ~1e-7 of (1, …, 1)
    np.testing.assert_allclose(res.z, np.ones(4), atol=1e-7)


def test_nonfinite_trial_points_are_rejected_not_fatal():
    """f = x − log x is +inf/NaN for x ≤ 0; the full Newton step from x = 3 lands there."""

    def f(z):
        x = z[0]
        return jnp.where(x > 0, x - jnp.log(jnp.where(x > 0, x, 1.0)), jnp.inf) + 0.0 * z[1] ** 2 + z[1] ** 2

    res = minimize(f, jnp.array([3.0, 1.0]), method="newton", scale=1.0, max_steps=100, tol=1e-14)
    assert int(res.status) == CONVERGED
    # λ²/2 ≤ 1e-14 with curvature 1 in both coordinates: |z − z*| ≲ 1.4e-7, typically far less
    np.testing.assert_allclose(res.z, [1.0, 0.0], atol=1e-8)


def test_nonfinite_start_is_a_status():
    res = minimize(
        lambda z: jnp.sum(jnp.log(z)), jnp.array([-1.0]), method="newton", scale=1.0, max_steps=5, tol=1e-12
    )
    assert int(res.status) == NONFINITE_START


def test_max_steps_is_a_status_and_the_hessian_is_of_the_last_point():
    z0 = jnp.array([-1.2, 1.0])
    res = minimize(rosenbrock, z0, method="newton", scale=1.0, max_steps=2, tol=1e-14)
    assert int(res.status) == MAX_STEPS and int(res.n_newton) == 2
    # recomputing the same AD quantities at the same point: rounding only
    np.testing.assert_allclose(res.hess, jax.hessian(rosenbrock)(res.z), rtol=1e-12)
    np.testing.assert_allclose(res.grad, jax.grad(rosenbrock)(res.z), rtol=1e-12)


def test_badly_scaled_quadratic_converges_in_one_newton_step():
    """Scales 1e-6 … 1e6: the Jacobi-scaled trust region takes the exact Newton step."""
    d = jnp.array([1e-6, 1.0, 1e6])
    target = jnp.array([3e5, -2.0, 4e-6])
    res = minimize(
        lambda z: 0.5 * jnp.sum(d * (z - target) ** 2),
        jnp.zeros(3),
        method="newton",
        scale=1.0,
        max_steps=10,
        tol=1e-20,
    )
    assert int(res.status) == CONVERGED and int(res.n_newton) <= 2
    # a quadratic: the Newton step is exact up to rounding of the 1e12 scale range
    np.testing.assert_allclose(res.z, target, rtol=1e-10)
