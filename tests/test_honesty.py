"""Never a confident wrong number: the reproductions of issue "round two", one test each.

Inputs and models that used to fail (table-driven), verified diagnoses, NaN carried through
every call after a flagged fit, multi-start that explores, concurrency and BLAS restoration.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest
from conftest import REF_EST, assert_rel
from numpyro import handlers

import mleppl
from mleppl import (
    ConvergenceWarning,
    MLEWarning,
    PrecisionWarning,
    SeparationWarning,
    fit_mle,
)

RNG = np.random.default_rng(20261127)


# --------------------------------------------------------------------------- models
def normal_mean(x, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10))
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Normal(b * x, 1.0), obs=y)


def factor_only(y):
    mu = numpyro.sample("mu", dist.Normal(0, 10))
    numpyro.factor("ll", dist.Normal(mu, 1.0).log_prob(y).sum())


def hurdle(y):
    p = numpyro.sample("p", dist.Beta(1, 1))
    lam = numpyro.sample("lam", dist.Gamma(1, 1))
    pos = y > 0
    with numpyro.plate("n", y.shape[0]):
        numpyro.sample("zero", dist.Bernoulli(p), obs=pos.astype(jnp.float64))
        with handlers.mask(mask=pos):
            numpyro.factor("count", dist.Poisson(lam).log_prob(y) - jnp.log1p(-jnp.exp(-lam)))


def no_free(y):
    with numpyro.plate("n", y.shape[0]):
        numpyro.sample("y", dist.Normal(0, 1), obs=y)


def logit_no_data(y=None):
    b = numpyro.sample("b", dist.Normal(0, 1))
    with numpyro.plate("n", 20):
        numpyro.sample("y", dist.Bernoulli(logits=b), obs=y)


def subsampled(x, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10))
    with numpyro.plate("n", x.shape[0], subsample_size=5) as idx:
        numpyro.sample("y", dist.Normal(b * x[idx], 1), obs=y[idx])


def param_outside(y):
    s = numpyro.param("s", -1.0, constraint=dist.constraints.positive)
    with numpyro.plate("n", y.shape[0]):
        numpyro.sample("y", dist.Normal(0, s), obs=y)


def uses_prng_key(y):
    mu = numpyro.sample("mu", dist.Normal(0, 10))
    numpyro.prng_key()
    with numpyro.plate("n", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, 1), obs=y)


def exponential_rate(x, y=None):
    b = numpyro.sample("b", dist.Normal(0, 1).expand([2]).to_event(1))
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Exponential(b[0] + b[1] * x), obs=y)


X = np.linspace(-1, 1, 30)
Y = 2.0 * X + RNG.normal(size=30)
COUNTS = (RNG.poisson(2.0, size=40) * (RNG.uniform(size=40) > 0.3)).astype(float)
XE = RNG.uniform(1, 2, 60)
YE = RNG.exponential(1 / (0.5 + 1.0 * XE))


# --------------------------------------------------------------------------- inputs that used to fail
def test_factor_only_likelihood_is_fitted():
    res = fit_mle(factor_only, Y)
    assert res.converged and res.nobs == 1
    assert_rel(res.params["mu"], Y.mean(), 1e-10, "mean of the factor likelihood")


def test_factor_inside_mask_hurdle_model():
    res = fit_mle(hurdle, COUNTS)
    pos = COUNTS > 0
    assert res.converged
    assert_rel(res.params["p"], pos.mean(), 1e-8, "hurdle probability")
    # zero-truncated Poisson MLE: λ/(1−e^{−λ}) = mean of the positive counts
    lam = float(res.params["lam"])
    assert abs(lam / (1 - np.exp(-lam)) - COUNTS[pos].mean()) < 1e-8


def test_model_without_free_parameters():
    res = fit_mle(no_free, y=Y)
    assert res.converged and res.n_params == 0 and dict(res.params) == {}
    assert_rel(res.loglik, -0.5 * np.sum(Y**2) - 15 * np.log(2 * np.pi), 1e-12, "loglik")


def test_pandas_nullable_float_column():
    col = pd.Series(pd.array(X, dtype="Float64"))
    a = fit_mle(normal_mean, col, y=Y)
    b = fit_mle(normal_mean, X, y=Y)
    assert_rel(a.params["b"], b.params["b"], 1e-14, "nullable Float64 vs float64")


def test_nullable_column_with_missing_values_is_named():
    col = pd.Series(pd.array(np.r_[X[:-1], np.nan], dtype="Float64"))
    col[29] = pd.NA
    with pytest.raises(ValueError, match="'x'"):
        fit_mle(normal_mean, col, y=Y)


@pytest.mark.parametrize(
    "model, args, kwargs, match",
    [
        (logit_no_data, (), {}, r"no observed site.*left out or None"),
        (param_outside, (Y,), {}, r"numpyro.param site 's': expected an initial value inside"),
    ],
    ids=["y_forgotten_discrete", "param_outside_constraint"],
)
def test_refused_with_a_message_naming_the_cause(model, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_mle(model, *args, **kwargs)


def test_model_drawing_its_own_key():
    res = fit_mle(uses_prng_key, Y)
    assert res.converged
    assert_rel(res.params["mu"], Y.mean(), 1e-10, "mean")


def test_disable_jit_gives_the_same_fit():
    ref = fit_mle(normal_mean, X, y=Y)
    with jax.disable_jit():
        res = fit_mle(normal_mean, X, y=Y)
    assert_rel(res.params["b"], ref.params["b"], 1e-12, "disable_jit")


def test_float32_data_warn_naming_the_argument():
    with pytest.warns(PrecisionWarning, match="argument 'x': got float32"):
        fit_mle(normal_mean, X.astype(np.float32), y=Y)


def test_init_is_used_in_the_first_trace():
    # at the unconstrained origin the rate b0 + b1·x is ~0 or negative: the model is invalid there
    res = fit_mle(exponential_rate, XE, y=YE, init={"b": np.array([0.5, 1.0])})
    assert res.converged
    # score equations of the exponential GLM with identity link: Σ (1/λ_i − y_i) x_i = 0
    lam = res.params["b"][0] + res.params["b"][1] * XE
    assert np.all(np.abs([np.sum(1 / lam - YE), np.sum((1 / lam - YE) * XE)]) < 1e-7)


def test_delta_of_a_function_that_is_nan_has_nan_se():
    res = fit_mle(normal_mean, X, y=Y)
    d = mleppl.delta(res, lambda p: jnp.log(-jnp.abs(p["b"])))
    assert np.isnan(d.estimate) and np.isnan(d.se)


@pytest.mark.parametrize("n_boot", [True, 0, -3, 2.5])
def test_bootstrap_rejects_non_counts(n_boot):
    res = fit_mle(normal_mean, X, y=Y)
    with pytest.raises(ValueError, match="n_boot: expected a positive integer"):
        mleppl.bootstrap(res, n_boot=n_boot)


# --------------------------------------------------------------------------- verified diagnoses
def nb2(x, y=None):
    b = numpyro.sample("b", dist.Normal(0, 5).expand([2]).to_event(1))
    phi = numpyro.sample("phi", dist.Exponential(1.0))
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.NegativeBinomial2(jnp.exp(b[0] + b[1] * x), phi), obs=y)


def _nb2_loglik(params, x, y):
    from scipy.special import gammaln

    b0, b1, log_phi = params
    mu, phi = np.exp(b0 + b1 * x), np.exp(log_phi)
    return np.sum(
        gammaln(y + phi) - gammaln(phi) - gammaln(y + 1)
        + phi * np.log(phi / (phi + mu)) + y * np.log(mu / (phi + mu))
    )  # fmt: skip


def test_negative_binomial_with_tiny_dispersion_parameter_is_interior():
    # φ ≈ 0.02: extremely overdispersed counts. From the default start the optimizer used to
    # run to μ = 1e114, where GammaPoisson's log-density overflows to log L > 0 (impossible
    # for discrete data), and called it an unbounded likelihood.
    scipy_opt = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(7)
    x = rng.normal(size=400)
    mu = np.exp(2.0 + 0.8 * x)
    phi = 0.02
    y = rng.negative_binomial(phi, phi / (phi + mu)).astype(float)
    res = fit_mle(nb2, x, y=y)
    assert res.converged and res.loglik < 0 and not res.issues
    # reference: the exact NB2 log-likelihood maximized by scipy from the mleppl optimum's
    # neighbourhood (Nelder–Mead, then BFGS to a tight gradient)
    start = np.array([1.0, 0.0, 0.0])
    ref = scipy_opt.minimize(lambda p: -_nb2_loglik(p, x, y), start, method="Nelder-Mead",
                             options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})  # fmt: skip
    ref = scipy_opt.minimize(lambda p: -_nb2_loglik(p, x, y), ref.x, method="BFGS", options={"gtol": 1e-9})
    assert_rel(res.params["b"], ref.x[:2], 1e-5, "NB2 coefficients vs scipy")
    assert_rel(res.params["phi"], np.exp(ref.x[2]), 1e-5, "NB2 φ vs scipy")
    assert_rel(res.loglik, -ref.fun, 1e-9, "NB2 log-likelihood vs scipy")


def test_discrete_likelihood_above_zero_is_not_a_value():
    nll = mleppl.negloglik(nb2, X, y=np.ones(30))
    # at μ = e^{300} GammaPoisson's log-density overflows; log L > 0 is returned as NaN
    z = jnp.array([300.0, 0.0, np.log(1e-3)])
    assert not np.isfinite(float(nll.fun(z))) or float(nll.fun(z)) >= 0


def gauss_peak(x, y=None):
    a = numpyro.sample("a", dist.Normal(0, 10))
    c = numpyro.sample("c", dist.Normal(0, 10))
    w = numpyro.sample("w", dist.HalfNormal(5))
    s = numpyro.sample("s", dist.HalfNormal(1))
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Normal(a * jnp.exp(-0.5 * ((x - c) / w) ** 2), s), obs=y)


def test_far_start_that_runs_away_is_refitted_not_called_separation():
    scipy_opt = pytest.importorskip("scipy.optimize")
    x = np.linspace(-5, 5, 60)
    y = 3 * np.exp(-0.5 * ((x - 1) / 0.8) ** 2) + 0.1 * np.random.default_rng(3).normal(size=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MLEWarning)
        res = fit_mle(gauss_peak, x, y=y, init={"a": 1.0, "c": 30.0, "w": 0.5})
    assert res.converged and not res.issues
    ref, _ = scipy_opt.curve_fit(
        lambda x, a, c, w: a * np.exp(-0.5 * ((x - c) / w) ** 2), x, y, p0=[3, 1, 1], xtol=1e-14, ftol=1e-14
    )
    assert_rel([res.params["a"], res.params["c"], abs(res.params["w"])], ref, REF_EST, "peak vs curve_fit")


def separated(x, y=None):
    b = numpyro.sample("b", dist.Normal(0, 5))
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=b * x), obs=y)


@pytest.fixture(scope="module")
def separated_fit():
    x = np.array([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])
    y = (x > 0).astype(float)
    with pytest.warns(SeparationWarning, match="checked: none of 8 other starts"):
        return fit_mle(separated, x, y=y)


def test_after_separation_every_call_carries_nan_or_warns(separated_fit):
    res = separated_fit
    assert not res.converged and np.isnan(res.se["b"])
    with pytest.warns(MLEWarning, match="flagged"):
        hc1 = res.with_cov("hc1")
    assert np.isnan(hc1.se["b"])
    with pytest.warns(ConvergenceWarning, match="summary"):
        assert np.isnan(hc1.summary().loc["b", "z"])
    with pytest.warns(MLEWarning, match="conf_int: the fit was flagged"):
        ci = res.conf_int()
    assert ci.isna().all().all()
    with pytest.warns(MLEWarning, match="flagged"), pytest.raises(ValueError, match="finite covariance"):
        res.to_datatree(num_samples=10)
    with pytest.warns(MLEWarning, match="flagged"):
        res.predictive(0, num_samples=3)


def test_not_converged_fit_is_marked_in_summary_and_its_intervals_warn():
    with pytest.warns(MLEWarning) as record:
        res = fit_mle(exponential_rate, XE, y=YE, init={"b": np.array([0.5, 1.0])}, max_steps=1)
    assert any(issubclass(w.category, ConvergenceWarning) for w in record)
    assert not res.converged
    with pytest.warns(ConvergenceWarning, match="summary: the fit did not converge"):
        table = res.summary()
    assert table.attrs["converged"] is False and "did not converge" in table.attrs["note"]
    assert "NOT converged" in str(res)
    with pytest.warns(ConvergenceWarning, match="conf_int"):
        res.conf_int()


def test_profile_interval_must_bracket_the_estimate():
    res = fit_mle(normal_mean, X, y=Y)
    off = float(res.params["b"]) + 5.0 * float(res.se["b"])
    moved = dataclasses.replace(
        res, z=np.array([off]), params=mleppl.core.records.frozen_dict({"b": np.array(off)})
    )
    # either the search finds a higher likelihood than at the (moved) estimate, or the
    # interval it finds does not bracket it: both are reported, never returned as numbers
    with pytest.warns(MLEWarning, match="does not bracket the estimate|higher likelihood"):
        ci = moved.conf_int(method="profile")
    assert ci.isna().all().all()


# --------------------------------------------------------------------------- multi-start
def cauchy(y):
    mu = numpyro.sample("mu", dist.Normal(0, 10))
    with numpyro.plate("n", y.shape[0]):
        numpyro.sample("y", dist.Cauchy(mu, 1.0), obs=y)


@pytest.mark.parametrize("y", [[-5.0, 5.0, 5.5], [-1.0, 8.0, 8.5, 9.0]])
def test_multi_start_drawn_on_the_priors_scale_finds_both_modes(y):
    y = np.asarray(y)
    with pytest.warns(mleppl.MultimodalityWarning):
        res = fit_mle(cauchy, y, n_starts=12)
    optima = res.optima[res.optima.converged]
    assert optima.optimum.nunique() >= 2
    # the best returned is the global maximum on a fine grid
    grid = np.linspace(-20, 20, 400001)
    ll = -np.sum(np.log1p((y[None, :] - grid[:, None]) ** 2), axis=1)
    assert abs(float(res.params["mu"]) - grid[np.argmax(ll)]) < 1e-4


# --------------------------------------------------------------------------- concurrency, BLAS, cache
def test_fits_from_four_threads_and_blas_restored():
    from threadpoolctl import threadpool_info

    before = [(i["filepath"], i["num_threads"]) for i in threadpool_info()]
    ref = fit_mle(normal_mean, X, y=Y)
    errors, results = [], []

    def worker():
        for _ in range(5):
            try:
                results.append(float(fit_mle(normal_mean, X, y=Y).params["b"]))
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 20
    assert np.allclose(results, float(ref.params["b"]), rtol=0, atol=1e-14)
    after = [(i["filepath"], i["num_threads"]) for i in threadpool_info()]
    assert after == before


def test_compile_cache_is_bounded(monkeypatch):
    from mleppl.core import cache

    monkeypatch.setattr(cache, "MAX_PROGRAMS", 2)
    for k in range(cache.MAX_PROGRAMS + 2):

        def model(x, y=None, k=k):  # a fresh closure each time: a new cache key
            b = numpyro.sample("b", dist.Normal(0, 10))
            with numpyro.plate("n", x.shape[0]):
                numpyro.sample("y", dist.Normal(b * x + k, 1.0), obs=y)

        fit_mle(model, X[:5], y=Y[:5])
    assert mleppl.cache_info()["size"] <= cache.MAX_PROGRAMS
    mleppl.clear_cache()
    assert mleppl.cache_info()["size"] == 0


# --------------------------------------------------------------------------- outputs that do not mislead
def scale_and_corr(x, y=None):
    mu = numpyro.sample("mu", dist.Normal(0, 10).expand([2]).to_event(1))
    tau = numpyro.sample("tau", dist.HalfNormal(2).expand([2]).to_event(1))
    corr = numpyro.sample("L", dist.LKJCholesky(2))
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.MultivariateNormal(mu, scale_tril=tau[:, None] * corr), obs=y)


def test_summary_tests_only_interior_nulls_and_keeps_intervals_in_the_support():
    yy = RNG.multivariate_normal([1.0, -1.0], [[1.0, 0.6], [0.6, 2.0]], size=200)
    res = fit_mle(scale_and_corr, np.zeros(200), y=yy)
    t = res.summary()
    # locations: ordinary z-tests; scales (0 on the boundary) and fixed Cholesky entries: none
    assert np.isfinite(t.loc[["mu[0]", "mu[1]"], "z"]).all()
    assert t.loc[["tau[0]", "tau[1]"], ["z", "p_value"]].isna().all().all()
    assert t.loc[["L[0,0]", "L[0,1]"], ["z", "p_value"]].isna().all().all()
    assert not np.isinf(t["z"]).any()
    # scale intervals stay inside (0, ∞): built on the log scale
    assert (t.loc[["tau[0]", "tau[1]"], "ci_lower"] > 0).all()
    se_log = res.se["tau"] / res.params["tau"]
    # se(log τ) from the delta method vs from the unconstrained covariance: equal up to the
    # roundoff of the Jacobian round trip (2e-9 measured)
    expected = res.params["tau"][0] * np.exp(-1.959963984540054 * se_log[0])
    assert_rel(t.loc["tau[0]", "ci_lower"], expected, 1e-7, "log-scale interval")


def test_subsampled_model_is_fitted_on_every_observation_and_says_it_was_stochastic():
    res = fit_mle(subsampled, X, y=Y)
    ref = fit_mle(subsampled, X, y=Y, method="newton")
    assert res.method == "svi" and "stochastic fit" in res.message and res.nobs == len(Y)
    np.testing.assert_allclose(res.estimate, ref.estimate, rtol=1e-9)
