"""Profile-likelihood and unconstrained-Wald intervals.

Exact references: closed-form profile intervals of the normal model, and for logistic
regression the defining property 2[ℓ(θ̂) − ℓ_p(endpoint)] = χ²₁(0.95) checked with an
independent restricted fit by statsmodels (offset). Tolerance ``ROOT`` = 1e-6: the endpoint
search stops at |r − z| ≤ 1e-7 on the signed root, i.e. ~1e-7 relative on the statistic.
"""

from __future__ import annotations

import math
import warnings

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import statsmodels.api as sm
from _unc_models import exponential, logit, logit_data, normal
from conftest import assert_rel

import mleppl
from mleppl import fit_mle

ROOT = 1e-6
Q95 = 3.841458820694124  # χ²₁(0.95)


@pytest.fixture(scope="module")
def normal_fit():
    y = np.random.default_rng(41).normal(1.0, 2.0, size=12)
    return y, fit_mle(normal, y=y)


def test_normal_closed_form(normal_fit):
    y, res = normal_fit
    n, ybar = len(y), y.mean()
    ss = np.sum((y - ybar) ** 2)
    ci = res.conf_int(method="profile")
    # μ: n·log(1 + n(μ−ȳ)²/SS) = q  ⇒  μ = ȳ ± sqrt(SS/n·(exp(q/n) − 1))
    half = math.sqrt(ss / n * math.expm1(Q95 / n))
    assert_rel(ci.loc["mu"].to_numpy(), [ybar - half, ybar + half], ROOT, "mu profile")
    # σ: n·(log(σ²/σ̂²) + σ̂²/σ² − 1) = q at both endpoints
    s2 = ss / n
    for s in ci.loc["sigma"].to_numpy():
        stat = n * (math.log(s**2 / s2) + s2 / s**2 - 1.0)
        assert_rel(stat, Q95, ROOT, "sigma profile statistic")
    assert ci.loc["sigma", "lower"] < math.sqrt(s2) < ci.loc["sigma", "upper"]


def test_levels_nest(normal_fit):
    _, res = normal_fit
    c90, c99 = res.conf_int(0.90, method="profile"), res.conf_int(0.99, method="profile")
    assert np.all(c99["lower"] < c90["lower"]) and np.all(c90["upper"] < c99["upper"])


def test_logit_endpoints_against_statsmodels_offset_fits(rng):
    X, y = logit_data(rng, n=120, p=3)
    res = fit_mle(logit, X, y=y)
    ci = res.conf_int(method="profile")
    for j in range(3):
        for end in ci.iloc[j].to_numpy():
            others = np.delete(X, j, axis=1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = sm.Logit(y, others, offset=X[:, j] * end).fit(disp=0, method="newton", tol=1e-12)
            assert_rel(2 * (res.loglik - r.llf), Q95, ROOT, f"LR at endpoint of beta[{j}]")
    # asymmetric around the estimate but close to Wald at this sample size
    wald = res.conf_int()
    np.testing.assert_allclose(ci.to_numpy(), wald.to_numpy(), atol=0.1)


def test_unconstrained_wald_stays_in_support():
    y = np.array([0.1, 0.2, 3.0])
    res = fit_mle(exponential, y=y)
    c = res.conf_int(scale="constrained")
    u = res.conf_int(scale="unconstrained")
    assert c.loc["rate", "lower"] < 0 < u.loc["rate", "lower"]
    # the default keeps bounded parameters inside their support: the unconstrained-scale interval
    np.testing.assert_allclose(res.conf_int().to_numpy(), u.to_numpy())
    # the interval on log(rate), mapped back by exp
    z, se = float(res.z[0]), math.sqrt(res.cov_z[0, 0])
    assert_rel(
        u.to_numpy()[0], np.exp([z - 1.959963984540054 * se, z + 1.959963984540054 * se]), 1e-10, "exp"
    )
    p = res.conf_int(method="profile")
    assert 0 < p.loc["rate", "lower"] < res.params["rate"] < p.loc["rate", "upper"]


def saturating(y=None):
    # μ = θ/(1+θ): as θ → ∞ the mean tends to 1 and the likelihood flattens out.
    theta = numpyro.sample("theta", dist.Exponential(1.0))
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Normal(theta / (1 + theta), 1.0), obs=y)


def test_open_interval_is_infinite_with_warning():
    # ȳ = 0.7, n = 10: the log-likelihood gains only 10·0.3²/2 = 0.45 < 1.92 as θ → ∞
    y = 0.7 + np.linspace(-1, 1, 10) - np.linspace(-1, 1, 10).mean()
    res = fit_mle(saturating, y=y)
    with pytest.warns(mleppl.BoundaryWarning, match="open on one side"):
        ci = res.conf_int(method="profile")
    assert ci.loc["theta", "upper"] == np.inf
    assert 0 < ci.loc["theta", "lower"] < res.params["theta"]


def test_open_at_the_support_boundary_is_the_boundary():
    # ȳ = 0.3: θ → 0 (μ → 0) loses only 10·0.3²/2 = 0.45: the lower endpoint is the boundary 0
    y = 0.3 + np.linspace(-1, 1, 10) - np.linspace(-1, 1, 10).mean()
    res = fit_mle(saturating, y=y)
    with pytest.warns(mleppl.BoundaryWarning):
        ci = res.conf_int(method="profile")
    assert ci.loc["theta", "lower"] == 0.0
    assert res.params["theta"] < ci.loc["theta", "upper"] < np.inf


def test_non_elementwise_site_is_nan_with_warning():
    def cat(y=None):
        p = numpyro.sample("p", dist.Dirichlet(jnp.ones(3)))
        s = numpyro.sample("s", dist.HalfNormal(1.0))
        with numpyro.plate("obs", y.shape[0]):
            numpyro.sample("y", dist.Categorical(probs=p), obs=y)
        numpyro.sample("z", dist.Normal(0.0, s).expand([2]).to_event(1), obs=jnp.array([0.5, -1.0]))

    res = fit_mle(cat, y=np.array([0, 1, 1, 2, 2, 2]))
    with pytest.warns(mleppl.MLEWarning, match="elementwise bijection"):
        ci = res.conf_int(method="profile")
    assert np.all(np.isnan(ci.loc[["p[0]", "p[1]", "p[2]"]].to_numpy()))
    assert np.all(np.isfinite(ci.loc["s"].to_numpy()))
    # unconstrained Wald falls back to the constrained scale for the simplex
    u, c = res.conf_int(scale="unconstrained"), res.conf_int(scale="constrained")
    np.testing.assert_allclose(u.loc["p[0]"].to_numpy(), c.loc["p[0]"].to_numpy())


def test_bad_options(normal_fit):
    _, res = normal_fit
    with pytest.raises(ValueError, match="method: expected one of"):
        res.conf_int(method="likelihood")
    with pytest.raises(ValueError, match="level: expected"):
        res.conf_int(1.5, method="profile")
    with pytest.raises(TypeError, match="unexpected options"):
        res.conf_int(method="profile", scale="unconstrained")
    with pytest.raises(ValueError, match="scale: expected"):
        res.conf_int(scale="log")
