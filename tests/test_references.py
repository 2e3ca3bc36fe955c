"""fit_mle against independent software: statsmodels and published certified values.

Tolerances (see conftest): estimates 1e-6 relative, standard errors 1e-5 relative,
log-likelihood 1e-8 relative. statsmodels is refit with tight tolerances so that its own
convergence is not the limiting factor.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import statsmodels.api as sm
from conftest import REF_EST, REF_LL, REF_SE, assert_rel
from jax.scipy.special import ndtr

import models.linear_regression as linreg
from mleppl import fit_mle


def linear(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 1e6).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(1e3))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def logit(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ beta), obs=y)


def probit(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(probs=ndtr(X @ beta)), obs=y)


def poisson(X, exposure, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Poisson(exposure * jnp.exp(X @ beta)), obs=y)


def negbin(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    alpha = numpyro.sample("alpha", dist.HalfNormal(5.0))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.NegativeBinomial2(jnp.exp(X @ beta), 1.0 / alpha), obs=y)


def softmax(X, n_classes, y=None):
    p = X.shape[1]
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([p, n_classes - 1]).to_event(2))
    eta = jnp.concatenate([jnp.zeros((X.shape[0], 1)), X @ beta], axis=1)
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Categorical(logits=eta), obs=y)


def gamma_glm(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    shape = numpyro.sample("shape", dist.Gamma(2.0, 0.1))
    mu = jnp.exp(X @ beta)
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Gamma(shape, shape / mu), obs=y)


def _design(rng, n, p):
    return np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])


def _compare(res, params, bse, llf, names=("beta",)):
    est = np.concatenate([np.ravel(res.params[k]) for k in names])
    se = np.concatenate([np.ravel(res.se[k]) for k in names])
    assert res.converged, res.message
    assert_rel(est, params, REF_EST, "estimates")
    assert_rel(se, bse, REF_SE, "standard errors")
    assert_rel(res.loglik, llf, REF_LL, "loglik")


# ----------------------------------------------------------------- Gaussian / OLS
def test_ols_longley_raw_matches_statsmodels_and_nist():
    """Raw Longley covariates: cond(X) = 5e9, cond(XᵀX) = 2e19."""
    ex = linreg.load()
    (X,), y = ex.args, ex.kwargs["y"]
    res = fit_mle(linear, X, y=y)
    ols = sm.OLS(y, X).fit()
    n, p = X.shape
    # statsmodels' OLS SEs use s² = RSS/(n − p); the MLE uses σ̂² = RSS/n.
    bse_mle = ols.bse * np.sqrt((n - p) / n)
    _compare(res, ols.params, bse_mle, ols.llf)
    # NIST StRD certified values for Longley
    certified = [
        -3482258.63459582,
        15.0618722713733,
        -0.358191792925910e-01,
        -2.02022980381683,
        -1.03322686717359,
        -0.511041056535807e-01,
        1829.15146461355,
    ]
    assert_rel(res.params["beta"], certified, REF_EST, "NIST certified")
    sigma_mle = np.sqrt(ols.ssr / n)
    assert_rel(res.params["sigma"], sigma_mle, REF_EST, "sigma")
    assert_rel(res.se["sigma"], sigma_mle / np.sqrt(2 * n), REF_SE, "se(sigma) = σ̂/√(2n)")


# ----------------------------------------------------------------- binary
@pytest.fixture(scope="module")
def spector():
    d = sm.datasets.spector.load_pandas()
    X = sm.add_constant(d.exog).to_numpy(float)
    return X, d.endog.to_numpy(float)


def test_logit_spector(spector):
    X, y = spector
    ref = sm.Logit(y, X).fit(method="newton", tol=1e-14, maxiter=100, disp=0)
    _compare(fit_mle(logit, X, y=y), ref.params, ref.bse, ref.llf)


def test_probit_spector(spector):
    X, y = spector
    ref = sm.Probit(y, X).fit(method="newton", tol=1e-14, maxiter=100, disp=0)
    _compare(fit_mle(probit, X, y=y), ref.params, ref.bse, ref.llf)


def test_logit_simulated_lbfgs_path(rng):
    """The L-BFGS + Newton-polish path used for large data gives the same answer."""
    X = _design(rng, 4000, 5)
    y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-(X @ [0.3, 1, -1, 0.5, 0])))).astype(float)
    ref = sm.Logit(y, X).fit(method="newton", tol=1e-14, maxiter=100, disp=0)
    for method in ("lbfgs-newton", "lbfgs", "newton"):
        _compare(fit_mle(logit, X, y=y, method=method), ref.params, ref.bse, ref.llf)


# ----------------------------------------------------------------- counts
def test_poisson_with_exposure(rng):
    n = 500
    X = _design(rng, n, 3)
    exposure = rng.uniform(0.5, 3.0, size=n)
    y = rng.poisson(exposure * np.exp(X @ [0.2, 0.5, -0.3])).astype(float)
    ref = sm.Poisson(y, X, exposure=exposure).fit(method="newton", tol=1e-14, maxiter=100, disp=0)
    _compare(fit_mle(poisson, X, exposure, y=y), ref.params, ref.bse, ref.llf)


def test_negative_binomial_nb2_alpha_estimated(rng):
    n = 800
    X = _design(rng, n, 3)
    mu = np.exp(X @ [1.0, 0.4, -0.6])
    alpha = 0.7
    y = rng.negative_binomial(1 / alpha, 1 / (1 + alpha * mu)).astype(float)
    ref = sm.NegativeBinomial(y, X, loglike_method="nb2").fit(method="newton", tol=1e-14, maxiter=200, disp=0)
    res = fit_mle(negbin, X, y=y)
    # statsmodels orders parameters (beta..., alpha); the SE of alpha is invariant to the
    # log parametrization mleppl optimizes in (delta method at the optimum).
    est = np.concatenate([res.params["beta"], [res.params["alpha"]]])
    se = np.concatenate([res.se["beta"], [res.se["alpha"]]])
    assert res.converged, res.message
    assert_rel(est, ref.params, REF_EST, "estimates")
    assert_rel(se, ref.bse, REF_SE, "standard errors")
    # the likelihood uses the exact Gamma–Poisson kernel (mleppl.core.kernels), not NumPyro's
    # betaln form (~4e-8 relative off on these data): statsmodels' llf to REF_LL
    assert_rel(res.loglik, ref.llf, REF_LL, "loglik vs statsmodels (exact NB2 log-pmf)")


# ----------------------------------------------------------------- multinomial
def test_mnlogit_anes96():
    d = sm.datasets.anes96.load_pandas().data
    y = d["PID"].to_numpy(int)
    X = sm.add_constant(d[["logpopul", "selfLR", "age", "educ", "income"]]).to_numpy(float)
    ref = sm.MNLogit(y, X).fit(method="newton", tol=1e-14, maxiter=100, disp=0)
    res = fit_mle(softmax, X, 7, y=y)
    # statsmodels' params are (p, K-1) with class 0 as reference, like the model.
    assert res.converged, res.message
    assert_rel(res.params["beta"], ref.params, REF_EST, "estimates")
    assert_rel(res.se["beta"], ref.bse, REF_SE, "standard errors")
    assert_rel(res.loglik, ref.llf, REF_LL, "loglik")


# ----------------------------------------------------------------- Gamma GLM
def test_gamma_glm_log_link(rng):
    """GLM β̂ does not depend on the shape; the MLE of the shape solves
    log ν − ψ(ν) = mean((y − μ)/μ − log(y/μ)) (scipy brentq); at ν̂ statsmodels' GLM
    with scale = 1/ν̂ gives the log-likelihood, and its OBSERVED Hessian the standard
    errors (GLM's default bse use the expected information, which differs from the
    observed one for the non-canonical log link)."""
    from scipy.optimize import brentq
    from scipy.special import digamma

    n = 400
    X = _design(rng, n, 3)
    mu = np.exp(X @ [1.0, 0.3, -0.2])
    y = rng.gamma(3.0, mu / 3.0)
    glm = sm.GLM(y, X, family=sm.families.Gamma(sm.families.links.Log()))
    beta = glm.fit(tol=1e-14, maxiter=200).params
    mu_hat = np.exp(X @ beta)
    rhs = np.mean((y - mu_hat) / mu_hat - np.log(y / mu_hat))
    nu = brentq(lambda v: np.log(v) - digamma(v) - rhs, 1e-3, 1e3, xtol=1e-14)
    ref = glm.fit(tol=1e-14, maxiter=200, scale=1.0 / nu)
    res = fit_mle(gamma_glm, X, y=y)
    oim = -glm.hessian(ref.params, scale=1.0 / nu, observed=True)
    bse = np.sqrt(np.diag(np.linalg.inv(oim)))
    _compare(res, ref.params, bse, glm.loglike(ref.params, scale=1.0 / nu))
    assert_rel(res.params["shape"], nu, REF_EST, "shape")
