"""Likelihood-ratio and Wald tests, information criteria, delta method.

References: statsmodels on nested Logit/Poisson (LRT statistic, AIC, BIC, Wald tests) and
scipy's χ² tail. Tolerance ``REF`` = 1e-6 relative (the two fits agree to ~1e-9 in the
log-likelihood; statistics are differences of such numbers).
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import statsmodels.api as sm
from _unc_models import exponential, logit, logit_data, poisson, poisson_data
from conftest import assert_rel
from statsmodels.tools.eval_measures import aicc as sm_aicc

import mleppl
from mleppl import fit_mle

REF = 1e-6


def _sm(cls, y, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(y, X).fit(disp=0, method="newton", maxiter=100, tol=1e-12)


@pytest.fixture(scope="module", params=["logit", "poisson"])
def nested(request):
    rng = np.random.default_rng(31 if request.param == "logit" else 32)
    model, data, cls = {
        "logit": (logit, logit_data, sm.Logit),
        "poisson": (poisson, poisson_data, sm.Poisson),
    }[request.param]
    X, y = data(rng, n=250, p=4)
    Xr = X[:, :2]
    full, restricted = fit_mle(model, X, y=y), fit_mle(model, Xr, y=y)
    return full, restricted, _sm(cls, y, X), _sm(cls, y, Xr)


def test_lrt_matches_statsmodels(nested):
    full, restricted, sf, sr = nested
    t = mleppl.lrt(restricted, full)
    stat = 2.0 * (sf.llf - sr.llf)
    p = scipy.stats.chi2.sf(stat, sf.df_model - sr.df_model)
    assert t.df == sf.df_model - sr.df_model == 2
    assert_rel(t.statistic, stat, REF, "LR statistic")
    assert_rel(t.p_value, p, REF, "LR p-value")


def test_information_criteria_match_statsmodels(nested):
    full, restricted, sf, sr = nested
    for mine, ref in ((full, sf), (restricted, sr)):
        assert_rel(mine.aic, ref.aic, REF, "AIC")
        assert_rel(mine.bic, ref.bic, REF, "BIC")
        k = ref.df_model + 1
        assert_rel(mine.aicc, sm_aicc(ref.llf, ref.nobs, k), REF, "AICc")


def test_compare_fits_table(nested):
    full, restricted, *_ = nested
    t = mleppl.compare_fits({"full": full, "restricted": restricted})
    assert list(t.columns) == ["loglik", "n_params", "nobs", "aic", "aicc", "bic", "d_aic", "weight"]
    assert t["aic"].is_monotonic_increasing and t["d_aic"].iloc[0] == 0.0
    assert_rel(t["weight"].sum(), 1.0, 1e-12, "Akaike weights")
    t2 = mleppl.compare_fits([full, restricted])
    assert set(t2.index) == {"model0", "model1"}


def test_lrt_refuses_non_nested_or_different_data(nested, rng):
    full, restricted, *_ = nested
    with pytest.raises(ValueError, match="fewer free parameters"):
        mleppl.lrt(full, restricted)
    with pytest.raises(ValueError, match="fewer free parameters"):
        mleppl.lrt(full, full)
    X, y = poisson_data(rng, n=250, p=4)
    other = fit_mle(poisson, X[:, :2], y=y)
    with pytest.raises(ValueError, match="same data"):
        mleppl.lrt(other, full)
    e = fit_mle(exponential, y=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="same number of observations|same data"):
        mleppl.lrt(e, full)
    with pytest.raises(TypeError, match="expected an MLEResult"):
        mleppl.lrt(object(), full)
    with pytest.raises(ValueError, match="fits of the same data"):
        mleppl.compare_fits([e, full])


def test_wald_test_matches_statsmodels(nested):
    full, _, sf, _ = nested
    R = np.array([[0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    ref = sf.wald_test(R, use_f=False, scalar=True)
    t = mleppl.wald_test(full, ["beta[2]", "beta[3]"])
    assert t.df == 2
    assert_rel(t.statistic, ref.statistic, REF, "Wald statistic")
    assert_rel(t.p_value, ref.pvalue, REF, "Wald p-value")
    # a general hypothesis with a right-hand side
    R2, q = np.array([[0, 1.0, -1.0, 0]]), np.array([0.2])
    ref2 = sf.wald_test((R2, q), use_f=False, scalar=True)
    assert_rel(mleppl.wald_test(full, R2, q).statistic, ref2.statistic, REF, "Wald R,q")
    with pytest.raises(ValueError, match="unknown parameter"):
        mleppl.wald_test(full, "gamma")
    with pytest.raises(ValueError, match="expected a matrix with 4 columns"):
        mleppl.wald_test(full, np.eye(3))
    with pytest.raises(ValueError, match="q: expected 1 values"):
        mleppl.wald_test(full, R2, [1.0, 2.0])


def test_robust_wald_uses_current_covariance(nested):
    full, _, sf, _ = nested
    R = np.array([[0, 0, 1.0, 0]])
    b, v = full.estimate[2], full.with_cov("hc0").cov[2, 2]
    assert_rel(mleppl.wald_test(full.with_cov("hc0"), R).statistic, b**2 / v, 1e-10, "robust Wald")


def test_chi2_sf_matches_scipy():
    from mleppl.core.stats import chi2_sf

    for x, df in ((0.5, 1), (3.84145882, 1), (12.0, 4), (100.0, 7), (0.0, 3)):
        assert_rel(chi2_sf(x, df), scipy.stats.chi2.sf(x, df), 1e-10, f"chi2 sf({x}, {df})")


def test_delta_odds_ratio_and_predicted_mean(nested):
    full, *_ = nested
    b, cov = full.estimate, full.cov
    d = mleppl.delta(full, lambda p: jnp.exp(p["beta"][1]))
    assert_rel(d.estimate, np.exp(b[1]), 1e-12, "odds ratio")
    assert_rel(d.se, np.exp(b[1]) * np.sqrt(cov[1, 1]), 1e-9, "odds ratio se")
    # vector output: linear predictor at new covariates, se = sqrt(diag(x Σ xᵀ))
    x_new = np.array([[1.0, 0.5, -1.0, 2.0], [1.0, 0.0, 0.0, 0.0]])
    d2 = mleppl.delta(full, lambda p: x_new @ p["beta"])
    assert d2.estimate.shape == (2,)
    assert_rel(d2.se, np.sqrt(np.diag(x_new @ cov @ x_new.T)), 1e-9, "linear predictor se")
    lo, hi = d2.conf_int(0.9)
    assert np.all(lo < d2.estimate) and np.all(d2.estimate < hi)
    # the current covariance kind is used
    dr = mleppl.delta(full.with_cov("hc0"), lambda p: p["beta"][1])
    assert_rel(dr.se, full.with_cov("hc0").bse[1], 1e-9, "robust delta")
    with pytest.raises(TypeError, match="expected a callable"):
        mleppl.delta(full, 3.0)


def test_aicc_small_sample():
    r = fit_mle(exponential, y=np.array([0.5, 1.0, 1.5, 2.0]))
    k, n = 1, 4
    assert_rel(r.aicc, r.aic + 2 * k * (k + 1) / (n - k - 1), 1e-12, "AICc")
    r2 = fit_mle(exponential, y=np.array([0.5, 1.0]))
    assert r2.aicc == np.inf
