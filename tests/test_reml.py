"""REML (``reml=``): the restricted likelihood, fixed effects integrated out under a flat density.

References: lme4's ``lmer(REML = TRUE)`` (sleepstudy random slopes, Penicillin crossed) and
glmmTMB's ``REML = TRUE`` binomial GLMM (cbpp), stored in ``tests/data/r_reml_references.json``
with the R calls and versions by ``tests/data/make_r_reml_references.R``; the linear model
against its closed form (residual variance with divisor n − p, OLS standard errors).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest
import scipy.stats as scipy_stats
from conftest import assert_rel

import mleppl
from mleppl import fit_mle

HERE = Path(__file__).parent
REF = json.loads((HERE / "data" / "r_reml_references.json").read_text())
DATA = HERE.parents[0] / "benchmarks" / "data"


def slope_lmm(x, g, n_groups, y=None):
    b = numpyro.sample("b", dist.Normal(0, 100).expand([2]).to_event(1))
    tau = numpyro.sample("tau", dist.HalfNormal(50).expand([2]).to_event(1))
    corr = numpyro.sample("L", dist.LKJCholesky(2))
    sigma = numpyro.sample("sigma", dist.HalfNormal(50))
    with numpyro.plate("group", n_groups):
        u = numpyro.sample("u", dist.MultivariateNormal(jnp.zeros(2), scale_tril=tau[:, None] * corr))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Normal(b[0] + u[g, 0] + (b[1] + u[g, 1]) * x, sigma), obs=y)


def linear(X, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ b, sigma), obs=y)


def _sleep():
    d = np.genfromtxt(DATA / "sleepstudy.csv", delimiter=",", names=True)
    g = d["Subject"].astype(np.int64) - 1
    return (d["Days"].astype(np.float64), g, int(g.max()) + 1), d["Reaction"].astype(np.float64)


@pytest.fixture(scope="module")
def sleep_reml():
    args, y = _sleep()
    return fit_mle(slope_lmm, *args, y=y, random=["u"], reml=["b"], coords={"b": ["(Intercept)", "Days"]})


def test_sleepstudy_equals_lmer_reml(sleep_reml):
    res, ref = sleep_reml, REF["sleepstudy"]
    # lmer's optimizer stops 7e-10 below this maximum: the log-likelihood to 1e-8, the
    # variance parameters (and what depends on them) to lmer's optimizer precision
    assert abs(res.loglik - ref["loglik"]) < 1e-8
    assert res.loglik >= ref["loglik"] - 1e-12
    assert_rel(res.params["b"], ref["fixef"]["estimate"], 1e-8)
    assert_rel(res.se["b"], ref["fixef"]["se"], 2e-5)
    assert_rel(res.restricted_cov, np.asarray(ref["vcov"]), 5e-5)
    # balanced: the estimate does not move with the variance parameters, so the joint
    # precision's covariance (glmmTMB's) equals the conditional one (lme4's vcov)
    np.testing.assert_allclose(res.restricted_cov, res.restricted_cov_given, rtol=1e-9, atol=1e-9)
    assert_rel(res.params["tau"], [ref["sd_intercept"], ref["sd_slope"]], 2e-5)
    assert_rel(res.params["sigma"], ref["sigma"], 2e-5)
    assert abs(float(res.params["L"][1, 0]) - ref["corr"]) < 1e-4
    assert res.reml == ("b",)
    assert "b" not in res.random_effects


def test_reml_summary_and_labels(sleep_reml):
    table = sleep_reml.summary()
    assert list(table.index[:2]) == ["b[(Intercept)]", "b[Days]"]
    assert table.status and table.status[0].startswith("REML")
    assert "REML" in table.to_string() and "REML" in repr(sleep_reml)
    np.testing.assert_allclose(table["se"].iloc[:2], np.ravel(sleep_reml.se["b"]), rtol=0, atol=0)
    # the variance parameters' own rows follow, their estimates the REML ones
    assert table.loc["sigma", "estimate"] == pytest.approx(float(sleep_reml.params["sigma"]), rel=1e-15)
    assert sleep_reml.n_params == 4  # tau (2), L (1 free), sigma: the optimized parameters
    ci = sleep_reml.conf_int()  # Wald intervals of the fixed effects too, as in the summary
    np.testing.assert_allclose(
        ci.iloc[:2].to_numpy(), table[["ci_lower", "ci_upper"]].iloc[:2].to_numpy(), rtol=1e-15
    )


def test_satterthwaite_df_equals_lmertest_reml(sleep_reml):
    table = sleep_reml.summary(df="satterthwaite")
    ref = REF["sleepstudy"]["fixef"]
    # lmerTest differentiates numerically at lmer's optimum: its df carry ~1e-5
    assert_rel(table["df"].iloc[:2].to_numpy(), ref["df"], 1e-4)
    assert_rel(table["se"].iloc[:2].to_numpy(), ref["se"], 2e-5)
    assert list(table.columns) == ["estimate", "se", "t", "df", "p_value", "ci_lower", "ci_upper"]
    assert np.isinf(table.loc["sigma", "df"])
    t, nu = table["t"].iloc[1], table["df"].iloc[1]
    assert table["p_value"].iloc[1] == pytest.approx(2 * scipy_stats.t.sf(abs(t), nu), rel=1e-10)
    q = scipy_stats.t.ppf(0.975, nu)
    assert table["ci_upper"].iloc[1] == pytest.approx(
        table["estimate"].iloc[1] + q * table["se"].iloc[1], rel=1e-12
    )
    with pytest.raises(ValueError, match=r"df: expected None or one of"):
        sleep_reml.summary(df="kenward-roger")


@pytest.mark.slow
def test_reml_differs_from_ml_as_lmer():
    """REML and ML of the same LMM: the same fixed effects (balanced design), lmer's ML
    log-likelihood, and ML's smaller standard errors."""
    args, y = _sleep()
    ml = fit_mle(slope_lmm, *args, y=y, random=["u"])
    ref = REF["sleepstudy_ml"]
    assert abs(ml.loglik - ref["loglik"]) < 1e-7
    assert_rel(ml.params["b"], ref["fixef"]["estimate"], 1e-7)
    table = ml.summary(df="satterthwaite")  # lmerTest on the ML fit
    assert_rel(table.loc[["b[0]", "b[1]"], "df"].to_numpy(), ref["fixef"]["df"], 1e-4)
    assert_rel(table.loc[["b[0]", "b[1]"], "se"].to_numpy(), ref["fixef"]["se"], 5e-5)


@pytest.mark.slow
def test_linear_model_satterthwaite_is_n_minus_p():
    """A linear model: the t-test's exact df, n − p (REML), and n for the ML fit."""
    rng = np.random.default_rng(5)
    n, p = 30, 3
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    y = X @ np.array([0.5, 1.0, -1.0]) + rng.normal(size=n)
    reml = fit_mle(linear, X, y=y, reml=["b"]).summary(df="satterthwaite")
    assert_rel(reml["df"].iloc[:p].to_numpy(), np.full(p, n - p), 1e-7)
    ols = sm_ols(X, y)
    assert_rel(reml["se"].iloc[:p].to_numpy(), ols.bse, 1e-7)
    assert_rel(reml["p_value"].iloc[:p].to_numpy(), ols.pvalues, 1e-6)
    ml = fit_mle(linear, X, y=y).summary(df="satterthwaite")
    assert_rel(ml["df"].iloc[:p].to_numpy(), np.full(p, n), 1e-7)


def sm_ols(X, y):
    import statsmodels.api as sm

    return sm.OLS(y, X).fit()


def test_linear_model_reml_is_ols_closed_form():
    rng = np.random.default_rng(3)
    n, p = 40, 3
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    y = X @ np.array([1.0, -0.5, 2.0]) + rng.normal(0, 1.3, n)
    res = fit_mle(linear, X, y=y, reml=["b"])
    beta = np.linalg.solve(X.T @ X, X.T @ y)
    rss = float(np.sum((y - X @ beta) ** 2))
    s2 = rss / (n - p)  # REML's residual variance: divisor n - p
    cov = s2 * np.linalg.inv(X.T @ X)  # = OLS's covariance of the coefficients
    _, logdet = np.linalg.slogdet(X.T @ X)
    ll = -0.5 * ((n - p) * np.log(2 * np.pi * s2) + (n - p) + logdet)
    assert_rel(res.params["b"], beta, 1e-10)
    # σ² to the optimizer's stopping rule (λ²/2 ≤ 1e-12: a few 1e-10 here), b̂ exactly
    assert_rel(float(res.params["sigma"]) ** 2, s2, 1e-8)
    assert_rel(res.restricted_cov, cov, 1e-8)
    assert abs(res.loglik - ll) < 1e-9
    ml = fit_mle(linear, X, y=y)
    assert_rel(float(ml.params["sigma"]) ** 2, rss / n, 1e-8)


def test_reml_refusals():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(20), rng.normal(size=20)])
    y = X @ np.array([1.0, 2.0]) + rng.normal(size=20)
    with pytest.raises(ValueError, match=r"reml: expected names of latent continuous sample sites"):
        fit_mle(linear, X, y=y, reml=["beta"])
    with pytest.raises(ValueError, match=r"reml: expected fixed-effect sites whose support is all of R"):
        fit_mle(linear, X, y=y, reml=["sigma"])
    with pytest.raises(TypeError, match=r"reml: expected a list"):
        fit_mle(linear, X, y=y, reml=True)
    res = fit_mle(linear, X, y=y, reml=["b"])
    with pytest.raises(ValueError, match=r"with_cov: expected kind='oim' for a REML fit"):
        res.with_cov("hc0")
    with pytest.raises(ValueError, match=r"REML fit .* not a sum over observation units"):
        mleppl.bootstrap(res, 10)
    again = res.with_cov("oim")  # the fixed effects keep their standard errors
    np.testing.assert_array_equal(again.se["b"], res.se["b"])
    boot = mleppl.bootstrap(res, 50, kind="parametric", rng_key=1)
    sd = np.std(np.asarray(boot.draws["sigma"]), ddof=1)
    # 50 draws: the bootstrap SD of σ̂ has a relative Monte-Carlo SE of 1/√(2·49) ≈ 0.10; it
    # agrees with the Wald SE within 4.5 of those
    assert abs(sd / float(res.se["sigma"]) - 1) < 0.45
    ml = fit_mle(linear, X, y=y)
    with pytest.raises(ValueError, match=r"lrt: expected fits of one kind, got REML and maximum"):
        mleppl.lrt(res, ml)
    with pytest.raises(ValueError, match=r"compare_fits: expected fits of one kind"):
        mleppl.compare_fits([res, ml])
    # REML fits whose fixed effects differ (another covariate, same number of them): refused
    X2 = np.column_stack([np.ones(20), rng.normal(size=20)])
    other = fit_mle(lambda X_, y=None: linear(X2, y), X, y=y, reml=["b"])
    with pytest.raises(ValueError, match=r"expected REML fits with the same fixed effects"):
        mleppl.compare_fits([res, other])
    # the same fixed effects (another parameterization of the same column space): allowed
    X3 = X @ np.array([[1.0, 2.0], [0.0, 3.0]])
    same = fit_mle(linear, X3, y=y, reml=["b"])
    table = mleppl.compare_fits({"a": res, "b": same})
    # REML's log-likelihood (lme4's) carries -log|det A| of a reparameterization X -> X A
    assert table.loc["b", "loglik"] - table.loc["a", "loglik"] == pytest.approx(-np.log(3.0), abs=1e-8)
    with pytest.raises(ValueError, match=r"reml: expected sites not also in random="):
        fit_mle(linear, X, y=y, reml=["b"], random=["b"])


def intercept_lmm(x, g, n_groups, y=None):
    b = numpyro.sample("b", dist.Normal(0, 100).expand([2]).to_event(1))
    tau = numpyro.sample("tau", dist.HalfNormal(50))
    sigma = numpyro.sample("sigma", dist.HalfNormal(50))
    with numpyro.plate("group", n_groups):
        u = numpyro.sample("u", dist.Normal(0, tau))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Normal(b[0] + u[g] + b[1] * x, sigma), obs=y)


@pytest.mark.slow
def test_lrt_of_a_variance_component_between_reml_fits(sleep_reml):
    """Same fixed effects, other random effects: the REML LRT is defined (lme4's anova with
    refit = FALSE), and equals 2 Δ of the restricted log-likelihoods."""
    args, y = _sleep()
    small = fit_mle(intercept_lmm, *args, y=y, random=["u"], reml=["b"])
    test = mleppl.lrt(small, sleep_reml)
    assert test.df == 2
    assert test.statistic == pytest.approx(2 * (sleep_reml.loglik - small.loglik), rel=1e-12)
    assert test.statistic > 0


def _penicillin():
    d = pd.read_csv(HERE / "data" / "penicillin.csv")
    plate = pd.factorize(d["plate"], sort=True)[0]
    sample = pd.factorize(d["sample"], sort=True)[0]
    return plate, sample, d["diameter"].to_numpy(np.float64)


def penicillin_model(plate, sample, y=None):
    b = numpyro.sample("b", dist.Normal(0, 100))
    s_p = numpyro.sample("sd_plate", dist.HalfNormal(5))
    s_s = numpyro.sample("sd_sample", dist.HalfNormal(5))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("plates", 24):
        up = numpyro.sample("u_plate", dist.Normal(0, s_p))
    with numpyro.plate("samples", 6):
        us = numpyro.sample("u_sample", dist.Normal(0, s_s))
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Normal(b + up[plate] + us[sample], sigma), obs=y)


@pytest.mark.slow
def test_penicillin_crossed_equals_lmer_reml():
    plate, sample, y = _penicillin()
    res = fit_mle(penicillin_model, plate, sample, y=y, random=["u_plate", "u_sample"], reml=["b"])
    ref = REF["penicillin"]
    assert abs(res.loglik - ref["loglik"]) < 1e-7
    assert_rel(res.params["b"], ref["fixef"]["estimate"], 1e-8)
    assert_rel(res.se["b"], ref["fixef"]["se"], 1e-4)
    assert_rel(res.params["sd_plate"], ref["sd"]["plate"], 1e-4)
    assert_rel(res.params["sd_sample"], ref["sd"]["sample"], 1e-4)
    assert_rel(res.params["sigma"], ref["sigma"], 1e-4)
    assert_rel(res.summary(df="satterthwaite").loc["b", "df"], ref["fixef"]["df"], 2e-4)


def cbpp_model(period, herd, size, n_herds, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([4]).to_event(1))
    su = numpyro.sample("sigma_u", dist.HalfNormal(2))
    with numpyro.plate("herd", n_herds):
        u = numpyro.sample("u", dist.Normal(0, su))
    with numpyro.plate("obs", period.shape[0]):
        numpyro.sample("y", dist.Binomial(size, logits=b[period] + u[herd]), obs=y)


@pytest.mark.slow
def test_cbpp_binomial_equals_glmmtmb_reml():
    d = np.genfromtxt(DATA / "cbpp.csv", delimiter=",", names=True)
    herd = d["herd"].astype(np.int64) - 1
    period = d["period"].astype(np.int64) - 1
    X = np.eye(4)[period]
    X[:, 0] = 1.0  # treatment contrasts, as glm's model matrix: intercept + period 2..4

    def model(X, herd, size, y=None):
        b = numpyro.sample("b", dist.Normal(0, 10).expand([4]).to_event(1))
        su = numpyro.sample("sigma_u", dist.HalfNormal(2))
        with numpyro.plate("herd", 15):
            u = numpyro.sample("u", dist.Normal(0, su))
        with numpyro.plate("obs", X.shape[0]):
            numpyro.sample("y", dist.Binomial(size, logits=X @ b + u[herd]), obs=y)

    y = d["incidence"].astype(np.float64)
    res = fit_mle(model, X, herd, d["size"].astype(np.int64), y=y, random=["u"], reml=["b"])
    ref = REF["cbpp"]
    assert abs(res.loglik - ref["loglik"]) < 1e-6
    assert_rel(res.params["b"], ref["fixef"], 1e-4)
    assert_rel(res.params["sigma_u"], ref["sd_herd"], 1e-4)
    # glmmTMB's REML standard errors come from the joint precision: they carry the variance
    # parameter's uncertainty (J Σ Jᵀ), which the conditional covariance (lme4's kind) lacks
    assert_rel(res.se["b"], ref["se"], 1e-6)
    given = np.sqrt(np.diag(res.restricted_cov_given))
    assert np.all(given < np.ravel(res.se["b"]) * (1 - 1e-3))
    with pytest.raises(ValueError, match=r"df='satterthwaite': expected a Gaussian"):
        res.summary(df="satterthwaite")
