"""The public names of DESIGN.md's API contract exist, with the documented signatures and types."""

from __future__ import annotations

import inspect

import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest

import mleppl


def model(x, y=None):
    a = numpyro.sample("a", dist.Normal(0, 10))
    b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Normal(a + b[0] * x + b[1] * x**2, sigma), obs=y)


@pytest.fixture(scope="module")
def res():
    rng = np.random.default_rng(11)
    x = rng.normal(size=80)
    y = 1.0 + 0.5 * x - 0.2 * x**2 + rng.normal(size=80)
    return mleppl.fit_mle(model, x, y=y)


def test_fit_mle_signature_options_are_keyword_only():
    sig = inspect.signature(mleppl.fit_mle)
    for name in ("method", "init", "rng_key", "max_steps", "tol", "n_starts"):
        assert sig.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY


def test_result_attributes(res):
    assert set(res.params) == set(res.se) == {"a", "b", "sigma"}
    assert res.params["b"].shape == res.se["b"].shape == (2,)
    assert res.param_names == ["a", "b[0]", "b[1]", "sigma"]
    assert isinstance(res.param_names, list)
    assert res.cov.shape == (4, 4)
    assert isinstance(res.loglik, float) and isinstance(res.nobs, int) and isinstance(res.n_params, int)
    assert res.nobs == 80 and res.n_params == 4
    np.testing.assert_allclose(res.aic, 2 * 4 - 2 * res.loglik)
    np.testing.assert_allclose(res.bic, 4 * np.log(80) - 2 * res.loglik)
    np.testing.assert_allclose(res.aicc, res.aic + 2 * 4 * 5 / (80 - 4 - 1))
    assert res.converged is True and isinstance(res.message, str)


def test_summary_and_conf_int(res):
    table = res.summary()
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["estimate", "se", "z", "p_value", "ci_lower", "ci_upper"]
    assert list(table.index) == res.param_names
    narrow = res.summary(level=0.5)
    assert (narrow.ci_upper - narrow.ci_lower < table.ci_upper - table.ci_lower).all()
    for method in ("wald", "profile"):
        ci = res.conf_int(level=0.95, method=method)
        assert list(ci.columns) == ["lower", "upper"] and list(ci.index) == res.param_names


def test_uncertainty_names(res):
    for kind in ("oim", "opg", "hc0", "hc1"):
        r2 = res.with_cov(kind)
        assert r2.cov_type == kind and set(r2.se) == set(res.se)
    groups = np.repeat(np.arange(20), 4)
    assert res.with_cov("cluster", groups=groups).cov_type == "cluster"
    boot = mleppl.bootstrap(res, 20, kind="nonparametric", rng_key=0)
    assert boot.draws["b"].shape == (20, 2) and isinstance(boot.n_failed, int)
    assert list(boot.conf_int().columns) == ["lower", "upper"]
    d = mleppl.delta(res, lambda p: p["b"][0] / p["sigma"])
    assert np.isfinite(d.estimate) and np.isfinite(d.se)


def test_lrt_on_nested_fits(res):
    def restricted(x, y=None):
        a = numpyro.sample("a", dist.Normal(0, 10))
        b = numpyro.sample("b", dist.Normal(0, 10))
        sigma = numpyro.sample("sigma", dist.HalfNormal(5))
        with numpyro.plate("obs", x.shape[0]):
            numpyro.sample("y", dist.Normal(a + b * x, sigma), obs=y)

    x = np.asarray(res.fit.inputs.leaves[0])
    y = np.asarray(res.fit.inputs.leaves[1])
    small = mleppl.fit_mle(restricted, x, y=y)
    t = mleppl.lrt(small, res)
    assert t.df == 1 and 0.0 <= t.p_value <= 1.0
    np.testing.assert_allclose(t.statistic, 2 * (res.loglik - small.loglik), rtol=1e-12)


def test_arviz_and_prediction_names(res):
    dt = res.to_datatree(num_samples=50, rng_key=0)
    assert {"posterior", "log_likelihood", "posterior_predictive", "observed_data"} <= set(dt.children)
    draws = res.predictive(0, np.linspace(-1, 1, 5), num_samples=7)
    assert draws["y"].shape == (7, 5)
    assert callable(mleppl.plot_ppc)
    assert {"kind", "path"} <= set(inspect.signature(mleppl.plot_ppc).parameters)


def test_bayes_names():
    for name in ("fit_nuts", "compare", "plot_compare"):
        assert callable(getattr(mleppl, name))
    sig = inspect.signature(mleppl.fit_nuts)
    assert {"num_warmup", "num_samples", "num_chains", "rng_key"} <= set(sig.parameters)


def test_warning_hierarchy():
    for name in (
        "ConvergenceWarning",
        "HessianWarning",
        "SeparationWarning",
        "IdentifiabilityWarning",
        "BoundaryWarning",
        "MultimodalityWarning",
    ):
        assert issubclass(getattr(mleppl, name), mleppl.MLEWarning)
    assert issubclass(mleppl.MLEWarning, UserWarning)
