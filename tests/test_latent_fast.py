"""Every random-effects path through ``uncertainty/`` on a tiny Gaussian LMM, in the fast suite.

The random-intercept LMM's marginal likelihood has a closed form (y_g ~ N(X_g b, σ_u² 11ᵀ +
σ² I)), so the Laplace fit, its profile interval, its group-level sandwich and its bootstraps
are checked against NumPy/SciPy computations on that closed form. The thorough versions (more
groups, more draws) are in ``test_latent.py`` (slow).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from scipy import optimize, stats

import mleppl

G, M = 8, 5
RNG = np.random.default_rng(21)
GROUP = np.repeat(np.arange(G), M)
X = RNG.normal(size=G * M)
Y = 1.0 + 0.5 * X + RNG.normal(0, 0.9, G)[GROUP] + RNG.normal(0, 1.0, G * M)


def lmm(x, g, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
    sigma_u = numpyro.sample("sigma_u", dist.HalfNormal(2))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2))
    with numpyro.plate("group", G):
        u = numpyro.sample("u", dist.Normal(0, sigma_u))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Normal(b[0] + b[1] * x + u[g], sigma), obs=y)


def group_loglik(theta):
    """log L_g in closed form, theta = (b0, b1, σ_u, σ)."""
    b0, b1, su, s = theta[0], theta[1], theta[2], theta[3]
    cov = su**2 * jnp.ones((M, M)) + s**2 * jnp.eye(M)
    return jnp.stack(
        [
            jax.scipy.stats.multivariate_normal.logpdf(Y[GROUP == j], b0 + b1 * X[GROUP == j], cov)
            for j in range(G)
        ]
    )


_ROWS = [GROUP == j for j in range(G)]


def closed_loglik(theta) -> float:
    """Σ_g log L_g in NumPy (the optimizer references call it thousands of times)."""
    b0, b1, su, s = theta
    if su < 0 or s <= 0:
        return -np.inf
    cov = su**2 * np.ones((M, M)) + s**2 * np.eye(M)
    resid = np.stack([Y[r] - b0 - b1 * X[r] for r in _ROWS])
    return float(np.sum(stats.multivariate_normal(np.zeros(M), cov).logpdf(resid)))


@pytest.fixture(scope="module")
def fit():
    return mleppl.fit_mle(lmm, X, GROUP, y=Y, random=["u"])


def _theta(res):
    return np.array([*res.params["b"], res.params["sigma_u"], res.params["sigma"]])


def test_laplace_is_the_closed_form_marginal_likelihood(fit):
    assert fit.converged
    np.testing.assert_allclose(fit.loglik, closed_loglik(_theta(fit)), rtol=1e-12)
    ref = optimize.minimize(
        lambda t: -closed_loglik(t),
        _theta(fit) + 0.05,
        method="Nelder-Mead",
        options=dict(xatol=1e-10, fatol=1e-12, maxiter=8000),
    )
    np.testing.assert_allclose(fit.loglik, -ref.fun, atol=1e-8)


def test_profile_interval_endpoints_drop_the_closed_form_profile_by_the_chi2_quantile(fit):
    ci = fit.conf_int(method="profile")
    crit = stats.chi2.ppf(0.95, 1) / 2
    for name, k in (("b[1]", 1), ("sigma_u", 2)):
        lo, hi = ci.loc[name]
        assert lo < _theta(fit)[k] < hi
        for end in (lo, hi):
            others = [i for i in range(4) if i != k]

            def prof(t, end=end, others=others, k=k):
                th = np.empty(4)
                th[k], th[others] = end, t
                return -closed_loglik(th)

            r = optimize.minimize(
                prof,
                _theta(fit)[others],
                method="Nelder-Mead",
                options=dict(xatol=1e-10, fatol=1e-12, maxiter=8000),
            )
            # the profile's endpoint root-finding stops within ~1e-4 nats of the χ² drop
            np.testing.assert_allclose(fit.loglik - (-r.fun), crit, atol=2e-4)


def test_cluster_sandwich_is_the_closed_form_group_sandwich(fit):
    theta = _theta(fit)
    order = [fit.param_names.index(n) for n in ("b[0]", "b[1]", "sigma_u", "sigma")]
    with jax.enable_x64(True):
        t = jnp.asarray(theta, dtype=jnp.float64)
        s = np.asarray(jax.jit(jax.jacfwd(group_loglik))(t))
        h = -np.asarray(jax.jit(jax.hessian(lambda tt: group_loglik(tt).sum()))(t))
    hinv = np.linalg.inv(h)
    ref = hinv @ (s.T @ s) @ hinv * G / (G - 4)
    got = np.asarray(fit.with_cov("cluster").cov)[np.ix_(order, order)]
    np.testing.assert_allclose(got, ref, rtol=1e-7)


def test_parametric_and_cluster_bootstraps_run_and_are_reproducible(fit):
    par = mleppl.bootstrap(fit, 12, kind="parametric", rng_key=4)
    again = mleppl.bootstrap(fit, 12, kind="parametric", rng_key=4)
    assert par.n_failed == 0 and par.draws["sigma_u"].shape == (12,)
    np.testing.assert_array_equal(par.draws["b"], again.draws["b"])
    # parametric draws centre on the estimate: |mean − b̂| within 4 Monte-Carlo SEs (SE/√12)
    assert np.all(np.abs(par.draws["b"].mean(0) - fit.params["b"]) < 4 * fit.se["b"] / np.sqrt(12))
    clu = mleppl.bootstrap(fit, 12, rng_key=5)  # nonparametric: whole groups resampled
    assert clu.n_failed == 0 and np.all(np.isfinite(clu.draws["b"]))
    assert not np.allclose(clu.draws["b"], par.draws["b"])
