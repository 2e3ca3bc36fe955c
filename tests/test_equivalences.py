"""The two classic equivalences: Gaussian MLE = least squares (MSE), and
Bernoulli / categorical MLE = minimum binary / categorical cross-entropy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from conftest import EXACT, REF_EST, assert_rel
from sklearn.metrics import log_loss

from mleppl import fit_mle, negloglik


def gaussian(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 100).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(10))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def bernoulli(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ beta), obs=y)


def categorical(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1], 2]).to_event(2))
    eta = jnp.concatenate([jnp.zeros((X.shape[0], 1)), X @ beta], axis=1)
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Categorical(logits=eta), obs=y)


def test_gaussian_mle_is_least_squares(rng):
    n = 200
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 3))])
    y = X @ [1.0, -2.0, 0.5, 3.0] + rng.normal(scale=1.7, size=n)
    res = fit_mle(gaussian, X, y=y)
    b_ols, *_ = np.linalg.lstsq(X, y, rcond=None)
    rss = np.sum((y - X @ b_ols) ** 2)
    assert_rel(res.params["beta"], b_ols, REF_EST, "β̂ = OLS")
    assert_rel(res.params["sigma"] ** 2, rss / n, REF_EST, "σ̂² = RSS/n")
    sigma2 = rss / n
    assert_rel(res.loglik, -n / 2 * (np.log(2 * np.pi * sigma2) + 1), EXACT, "loglik closed form")


def test_gaussian_nll_is_affine_in_mse(rng):
    """For fixed σ, NLL(β) = n/2·log(2πσ²) + n/(2σ²)·MSE(β) at any β, not only the optimum."""
    n = 50
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.normal(size=n)
    nll = negloglik(gaussian, X, y=y)
    sigma = 1.3
    with jax.enable_x64(True):
        for beta in (np.array([0.0, 0.0]), np.array([0.4, -1.2]), np.array([3.0, 2.0])):
            z = nll.unconstrain({"beta": beta, "sigma": sigma})
            mse = np.mean((y - X @ beta) ** 2)
            expected = n / 2 * np.log(2 * np.pi * sigma**2) + n / (2 * sigma**2) * mse
            assert_rel(float(nll.fun(z)), expected, EXACT, "NLL = affine(MSE)")


def test_bernoulli_nll_is_binary_cross_entropy(rng):
    n = 300
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(X @ [0.2, 1.0, -0.7])))).astype(float)
    nll = negloglik(bernoulli, X, y=y)
    with jax.enable_x64(True):
        for beta in (np.array([0.1, 0.2, 0.3]), np.array([-1.0, 2.0, 0.5])):
            eta = X @ beta
            # the stable form of −[y log σ(η) + (1−y) log σ(−η)]; sklearn's log_loss on
            # p = σ(η) loses ~1e-9 relative to rounding of 1 − p, so it is checked at 1e-8
            bce = np.sum(y * np.logaddexp(0, -eta) + (1 - y) * np.logaddexp(0, eta))
            assert_rel(log_loss(y, 1 / (1 + np.exp(-eta)), normalize=False), bce, 1e-8, "sklearn")
            assert_rel(float(nll.fun(nll.unconstrain({"beta": beta}))), bce, EXACT, "NLL = summed BCE")
    res = fit_mle(bernoulli, X, y=y)
    eta = X @ res.params["beta"]
    bce = np.sum(y * np.logaddexp(0, -eta) + (1 - y) * np.logaddexp(0, eta))
    assert_rel(-res.loglik, bce, EXACT, "−loglik = BCE at θ̂")


def test_categorical_nll_is_categorical_cross_entropy(rng):
    n = 300
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    B = np.array([[0.5, -0.5], [1.0, 0.2], [-0.3, 0.8]])
    eta = np.column_stack([np.zeros(n), X @ B])
    P = np.exp(eta) / np.exp(eta).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=pi) for pi in P])
    res = fit_mle(categorical, X, y=y)
    eta_hat = np.column_stack([np.zeros(n), X @ res.params["beta"]])
    log_p = eta_hat - np.logaddexp.reduce(eta_hat, axis=1, keepdims=True)
    cce = -np.sum(log_p[np.arange(n), y])  # −Σ_i Σ_k 1[y_i = k] log p_ik
    assert_rel(-res.loglik, cce, EXACT, "−loglik = categorical cross-entropy")
    assert_rel(log_loss(y, np.exp(log_p), normalize=False, labels=[0, 1, 2]), cce, 1e-8, "sklearn")
