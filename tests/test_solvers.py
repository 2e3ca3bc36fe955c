"""The optimizer layer on its own: Moré–Garbow–Hillstrom test functions from their standard starts.

Each problem is a sum of squares ``f(x) = Σ rᵢ(x)²`` minimized by ``minimize(..., method="newton")``
with the solver's own step budget (Moré, Garbow & Hillstrom 1981, ACM TOMS 7:17–41; minima as
published there, to their 6 printed digits).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mleppl.core.status import Status
from mleppl.solvers.minimize import minimize

# ~20 s of far-start fits on 2 cores: run by `make test-slow`, which CI runs too
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _i(m):
    return jnp.arange(1.0, m + 1.0)


def rosenbrock(x):
    return jnp.array([10 * (x[1] - x[0] ** 2), 1 - x[0]])


def freudenstein_roth(x):
    return jnp.array(
        [-13 + x[0] + ((5 - x[1]) * x[1] - 2) * x[1], -29 + x[0] + ((x[1] + 1) * x[1] - 14) * x[1]]
    )


def powell_badly_scaled(x):
    return jnp.array([1e4 * x[0] * x[1] - 1, jnp.exp(-x[0]) + jnp.exp(-x[1]) - 1.0001])


def brown_badly_scaled(x):
    return jnp.array([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2])


def beale(x):
    y = jnp.array([1.5, 2.25, 2.625])
    return y - x[0] * (1 - x[1] ** _i(3))


def jennrich_sampson(x):
    i = _i(10)
    return 2 + 2 * i - (jnp.exp(i * x[0]) + jnp.exp(i * x[1]))


def helical_valley(x):
    theta = jnp.arctan(x[1] / x[0]) / (2 * jnp.pi) + jnp.where(x[0] < 0, 0.5, 0.0)
    return jnp.array([10 * (x[2] - 10 * theta), 10 * (jnp.sqrt(x[0] ** 2 + x[1] ** 2) - 1), x[2]])


def bard(x):
    y = jnp.array([0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39])
    u = _i(15)
    v = 16 - u
    w = jnp.minimum(u, v)
    return y - (x[0] + u / (v * x[1] + w * x[2]))


def gaussian(x):
    y = jnp.array([9e-4, 4.4e-3, 1.75e-2, 5.4e-2, 0.1295, 0.242, 0.3521, 0.3989])
    y = jnp.concatenate([y, y[-2::-1]])
    t = (8 - _i(15)) / 2
    return x[0] * jnp.exp(-x[1] * (t - x[2]) ** 2 / 2) - y


def meyer(x):
    y = jnp.array(
        [
            34780,
            28610,
            23650,
            19630,
            16370,
            13720,
            11540,
            9744,
            8261,
            7030,
            6005,
            5147,
            4427,
            3820,
            3307,
            2872.0,
        ]
    )
    t = 45 + 5 * _i(16)
    return x[0] * jnp.exp(x[1] / (t + x[2])) - y


def gulf(x):
    t = _i(99) / 100
    y = 25 + (-50 * jnp.log(t)) ** (2 / 3)
    return jnp.exp(-(jnp.abs(y - x[1]) ** x[2]) / x[0]) - t


def box3d(x):
    t = 0.1 * _i(10)
    return jnp.exp(-t * x[0]) - jnp.exp(-t * x[1]) - x[2] * (jnp.exp(-t) - jnp.exp(-10 * t))


def wood(x):
    return jnp.array(
        [
            10 * (x[1] - x[0] ** 2),
            1 - x[0],
            jnp.sqrt(90.0) * (x[3] - x[2] ** 2),
            1 - x[2],
            jnp.sqrt(10.0) * (x[1] + x[3] - 2),
            (x[1] - x[3]) / jnp.sqrt(10.0),
        ]
    )


def kowalik_osborne(x):
    y = jnp.array([0.1957, 0.1947, 0.1735, 0.16, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246])
    u = jnp.array([4, 2, 1, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625])
    return y - x[0] * (u**2 + u * x[1]) / (u**2 + u * x[2] + x[3])


def brown_dennis(x):
    t = _i(20) / 5
    return (x[0] + t * x[1] - jnp.exp(t)) ** 2 + (x[2] + x[3] * jnp.sin(t) - jnp.cos(t)) ** 2


def osborne1(x):
    y = jnp.array(
        [0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.85, 0.818, 0.784, 0.751, 0.718, 0.685, 0.658]
        + [0.628, 0.603, 0.58, 0.558, 0.538, 0.522, 0.506, 0.49, 0.478, 0.467, 0.457, 0.448, 0.438]
        + [0.431, 0.424, 0.42, 0.414, 0.411, 0.406]
    )
    t = 10 * (_i(33) - 1)
    return y - (x[0] + x[1] * jnp.exp(-t * x[3]) + x[2] * jnp.exp(-t * x[4]))


def biggs_exp6(x):
    t = 0.1 * _i(13)
    y = jnp.exp(-t) - 5 * jnp.exp(-10 * t) + 3 * jnp.exp(-4 * t)
    return x[2] * jnp.exp(-t * x[0]) - x[3] * jnp.exp(-t * x[1]) + x[5] * jnp.exp(-t * x[4]) - y


def watson(x):
    n = x.shape[0]
    t = _i(29) / 29
    j = jnp.arange(n)
    s1 = jnp.sum(j[1:] * x[1:] * t[:, None] ** (j[1:] - 1), axis=1)
    s2 = jnp.sum(x * t[:, None] ** j, axis=1)
    return jnp.concatenate([s1 - s2**2 - 1, jnp.array([x[0], x[1] - x[0] ** 2 - 1])])


def extended_rosenbrock(x):
    return jnp.concatenate([10 * (x[1::2] - x[0::2] ** 2), 1 - x[0::2]])


# name: (residuals, standard start, acceptable minimum values). Several problems have more
# than one local minimum (MGH list them); from the standard start any listed one is correct.
PROBLEMS = {
    "rosenbrock": (rosenbrock, [-1.2, 1.0], [0.0]),
    "freudenstein_roth": (freudenstein_roth, [0.5, -2.0], [0.0, 48.9842]),
    "powell_badly_scaled": (powell_badly_scaled, [0.0, 1.0], [0.0]),
    "brown_badly_scaled": (brown_badly_scaled, [1.0, 1.0], [0.0]),
    "beale": (beale, [1.0, 1.0], [0.0]),
    "jennrich_sampson": (jennrich_sampson, [0.3, 0.4], [124.362]),
    "helical_valley": (helical_valley, [-1.0, 0.0, 0.0], [0.0]),
    "bard": (bard, [1.0, 1.0, 1.0], [8.21487e-3, 17.4286]),
    "gaussian": (gaussian, [0.4, 1.0, 0.0], [1.12793e-8]),
    "meyer": (meyer, [0.02, 4000.0, 250.0], [87.9458]),
    "gulf": (gulf, [5.0, 2.5, 0.15], [0.0]),
    "box3d": (box3d, [0.0, 10.0, 20.0], [0.0]),
    "wood": (wood, [-3.0, -1.0, -3.0, -1.0], [0.0]),
    "kowalik_osborne": (kowalik_osborne, [0.25, 0.39, 0.415, 0.39], [3.07505e-4, 1.02734e-3]),
    "brown_dennis": (brown_dennis, [25.0, 5.0, -5.0, -1.0], [85822.2]),
    "osborne1": (osborne1, [0.5, 1.5, -1.0, 0.01, 0.02], [5.46489e-5]),
    "biggs_exp6": (biggs_exp6, [1.0, 2.0, 1.0, 1.0, 1.0, 1.0], [0.0, 5.65565e-3, 3.06367e-1]),
    "watson6": (watson, [0.0] * 6, [2.28767e-3]),
    "extended_rosenbrock10": (extended_rosenbrock, [-1.2, 1.0] * 5, [0.0]),
}


def _solve(resid, x0):
    fun = lambda x: jnp.sum(resid(x) ** 2)  # noqa: E731
    return jax.jit(lambda z: minimize(fun, z, method="newton", scale=1.0, tol=1e-12))(jnp.asarray(x0))


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_mgh_from_standard_start(name):
    resid, x0, minima = PROBLEMS[name]
    res = _solve(resid, x0)
    f = float(res.value)
    # published minima have 6 significant digits. Near a minimum f − f* ≈ λ²/2, and
    # convergence means λ²/2 ≤ tol = 1e-12: a zero minimum is met to ~1e-12 (Powell's
    # badly scaled function stops at 7e-13; most reach 1e-20 or less)
    close = [abs(f - m) <= (1e-5 * m if m > 0 else 1e-11) for m in minima]
    assert any(close), f"{name}: f = {f:.6g}, expected one of {minima}"
    if name == "biggs_exp6" and abs(f - 5.65565e-3) < 1e-7:
        # this minimum value is reached where two exponentials merge (x1 = x5, x3 = x6): a
        # degenerate critical point whose Hessian has a negative eigenvalue (−9.8e-3), so
        # the honest report is "not positive definite"
        assert int(res.status) in (Status.CONVERGED, Status.NOT_POSITIVE_DEFINITE)
        return
    assert int(res.status) == Status.CONVERGED, Status(int(res.status)).name


def test_hessian_is_at_the_returned_point():
    res = _solve(meyer, [0.02, 4000.0, 250.0])
    fun = lambda x: jnp.sum(meyer(x) ** 2)  # noqa: E731
    # the same AD quantities at the same point: equal up to rounding
    np.testing.assert_allclose(res.hess, jax.hessian(fun)(res.z), rtol=1e-12)
