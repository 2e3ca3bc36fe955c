"""Adaptive Gauss–Hermite quadrature for vector random effects (two or three per group).

The marginal log-likelihood of a random-slope logistic GLMM is checked against a brute-force
numerical integral (a fine trapezoid grid over each group's two effects, whose error is far
below 1e-10 for this smooth, fast-decaying integrand) at the quadrature fit's estimate.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from scipy.special import expit, log_expit, logsumexp

from mleppl import fit_mle


def slope_logit(x, g, n_groups, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
    tau = numpyro.sample("tau", dist.HalfNormal(2).expand([2]).to_event(1))
    corr = numpyro.sample("L", dist.LKJCholesky(2))
    with numpyro.plate("group", n_groups):
        u = numpyro.sample("u", dist.MultivariateNormal(jnp.zeros(2), scale_tril=tau[:, None] * corr))
    with numpyro.plate("obs", x.shape[0]):
        eta = b[0] + u[g, 0] + (b[1] + u[g, 1]) * x
        numpyro.sample("y", dist.Bernoulli(logits=eta), obs=y)


def _data(G=8, per=8, seed=2):
    # Eight groups of eight: both fits are interior. (On six groups of eight, seed 4, the
    # Laplace fit runs the correlation to ±1 and is honestly reported as not converged.)
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), per)
    x = rng.normal(size=G * per)
    u = rng.multivariate_normal([0, 0], [[1.0, 0.4], [0.4, 0.6]], G)
    y = (rng.uniform(size=x.size) < expit(-0.2 + u[g, 0] + (0.8 + u[g, 1]) * x)).astype(np.float64)
    return x, g, G, y


def brute_force_loglik(params, x, g, G, y, m=801, width=9.0):
    """Σ_g log ∫∫ Π_i p(y_i | u) N(u; 0, Σ) du on a trapezoid grid of m² points over ±width
    SDs of the random-effect distribution."""
    b, tau, L = (np.asarray(params[k], dtype=np.float64) for k in ("b", "tau", "L"))
    C = tau[:, None] * L
    Sigma = C @ C.T
    t = np.linspace(-width, width, m)
    h = t[1] - t[0]
    z1, z2 = np.meshgrid(t, t, indexing="ij")
    Z = np.stack([z1.ravel(), z2.ravel()], axis=1)  # standard-normal coordinates
    U = Z @ C.T  # u = C z, so du = |det C| dz and N(u; 0, Σ) du = φ(z) dz
    logphi = -0.5 * np.sum(Z**2, axis=1) - np.log(2 * np.pi)
    w = np.full(m, h)
    w[[0, -1]] *= 0.5
    logw = np.log(np.outer(w, w).ravel())
    total = 0.0
    for k in range(G):
        sel = g == k
        eta = b[0] + U[:, :1] + (b[1] + U[:, 1:]) * x[sel][None, :]
        ll = np.sum(np.where(y[sel][None, :] > 0, log_expit(eta), log_expit(-eta)), axis=1)
        total += logsumexp(ll + logphi + logw)
    assert np.all(np.linalg.eigvalsh(Sigma) > 0)
    return total


@pytest.mark.slow
def test_vector_agq_equals_brute_force_integral():
    x, g, G, y = _data()
    lap = fit_mle(slope_logit, x, g, G, y=y, random=["u"])
    agq = fit_mle(slope_logit, x, g, G, y=y, random=["u"], nagq=12)
    ref = brute_force_loglik(agq.params, x, g, G, y)
    assert abs(agq.loglik - ref) < 1e-8
    # the Laplace approximation at its own optimum is visibly off the integral there
    assert abs(lap.loglik - brute_force_loglik(lap.params, x, g, G, y)) > 1e-4
    assert agq.converged and np.all(np.isfinite(np.ravel(agq.se["b"])))


def test_vector_agq_refusals(monkeypatch):
    from mleppl.model import latent

    x, g, G, y = _data(G=3, per=4)
    monkeypatch.setattr(latent, "AGQ_MAX_TANGENTS", 100)  # nodes × rows beyond the budget
    with pytest.raises(ValueError, match=r"nagq=5: 25 quadrature nodes per group \(5\^2, pruned\) × 12 rows"):
        fit_mle(slope_logit, x, g, G, y=y, random=["u"], nagq=5)
