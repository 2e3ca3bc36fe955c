"""ArviZ 1.x export: groups, dims, numbers through az.summary / az.loo / az.compare.

Tolerances: EXACT for quantities computed twice in float64; Monte-Carlo checks
use a stated multiple of the Monte-Carlo standard error.
"""

from __future__ import annotations

import arviz as az
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from conftest import EXACT

from mleppl import HessianWarning, MLEWarning, fit_mle
from mleppl.reporting.arviz import PointwiseLikelihoodError, loo

S = 2000  # draws of the asymptotic normal in the module's trees


# ----------------------------------------------------------------- models
def linear_known_sigma(X, y=None):
    a = numpyro.sample("a", dist.Normal(0, 10))
    b = numpyro.sample("b", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Normal(a + X @ b, 1.0), obs=y)


def two_sites(x, y=None, counts=None):
    """A continuous and a count site in different plates, plus deterministic sites."""
    a = numpyro.sample("a", dist.Normal(0, 10))
    b = numpyro.sample("b", dist.Normal(0, 10))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    rate = numpyro.sample("rate", dist.Gamma(2, 1))
    numpyro.deterministic("log_rate", jnp.log(rate))
    with numpyro.plate("obs", x.shape[0]):
        mu = numpyro.deterministic("mu", a + b * x)
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)
    with numpyro.plate("day", counts.shape[0]):
        numpyro.sample("counts", dist.Poisson(rate), obs=counts)


def mvn(y=None):
    """Vector observations: one 3-vector per row (to_event)."""
    loc = numpyro.sample("loc", dist.Normal(0, 10).expand([3]).to_event(1))
    scale = numpyro.sample("scale", dist.HalfNormal(5).expand([3]).to_event(1))
    with numpyro.plate("row", y.shape[0]):
        numpyro.sample("y", dist.Normal(loc, scale).to_event(1), obs=y)


def masked(y=None, keep=None):
    mu = numpyro.sample("mu", dist.Normal(0, 10))
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y, obs_mask=keep)


def with_factor(y=None):
    mu = numpyro.sample("mu", dist.Normal(0, 10))
    numpyro.factor("penalty", -0.5 * mu**2)
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def lin(rng):
    X = rng.normal(size=(60, 2))
    y = 0.5 + X @ np.array([1.0, -0.7]) + rng.normal(size=60)
    res = fit_mle(linear_known_sigma, X, y=y)
    return X, y, res, res.to_datatree(num_samples=S, rng_key=1)


@pytest.fixture(scope="module")
def two(rng):
    x = rng.normal(size=80)
    y = 1.0 + 2.0 * x + 0.5 * rng.normal(size=80)
    counts = rng.poisson(3.0, size=25)
    res = fit_mle(two_sites, x, y=y, counts=counts)
    return res, res.to_datatree(num_samples=S, rng_key=2)


# ----------------------------------------------------------------- structure
def test_groups_dims_and_shapes(two):
    res, dt = two
    for g in ("posterior", "sample_stats", "log_likelihood", "posterior_predictive", "observed_data"):
        assert g in dt.children, g
    for g in ("constant_data", "mle", "mle_se", "mle_cov"):
        assert g in dt.children, g
    post = dt.posterior
    assert dict(post.sizes)["chain"] == 1 and dict(post.sizes)["draw"] == S
    assert post["mu"].dims == ("chain", "draw", "obs")
    assert set(dt.log_likelihood.data_vars) == {"y", "counts"}
    assert dt.log_likelihood["y"].dims == ("chain", "draw", "obs")
    assert dt.log_likelihood["counts"].dims == ("chain", "draw", "day")
    assert dt.posterior_predictive["counts"].shape == (1, S, 25)
    assert dt.observed_data["y"].dims == ("obs",)
    assert set(dt.constant_data.data_vars) == {"x", "y", "counts"}
    # bounded parameters stay inside their support
    assert float(post["sigma"].min()) > 0 and float(post["rate"].min()) > 0
    # deterministic sites are evaluated at each draw
    np.testing.assert_allclose(post["log_rate"].values, np.log(post["rate"].values), rtol=EXACT)


def test_attrs_and_mle_groups_keep_everything(two):
    res, dt = two
    attrs = dt.posterior.attrs
    assert attrs["estimator"] == "maximum likelihood"
    assert attrs["posterior_kind"] == "asymptotic_normal"
    assert attrs["cov_type"] == res.cov_type and attrs["converged"] == 1
    for k in ("loglik", "aic", "bic"):
        assert attrs[k] == pytest.approx(getattr(res, k), rel=EXACT)
    for name, v in res.params.items():
        np.testing.assert_allclose(dt.mle[name].values, v, rtol=EXACT)
        np.testing.assert_allclose(dt.mle_se[name].values, res.se[name], rtol=EXACT)
    np.testing.assert_allclose(dt.mle["mu"].values, res.deterministic["mu"], rtol=EXACT)
    np.testing.assert_allclose(dt.mle_cov["cov"].values, res.cov, rtol=EXACT)
    np.testing.assert_allclose(dt.mle_cov["cov_z"].values, res.cov_z, rtol=EXACT)
    assert list(dt.mle_cov["param"].values) == res.param_names


def test_point_estimate_tree_loglik_sums_to_fit(two):
    res, _ = two
    dt = res.to_datatree(uncertainty=False, num_samples=50)
    assert dt.posterior["a"].shape == (1, 1)
    assert dt.posterior.attrs["posterior_kind"] == "point_estimate"
    assert dt.posterior_predictive["y"].shape == (1, 50, 80)  # plug-in replicates
    total = sum(float(dt.log_likelihood[v].sum()) for v in dt.log_likelihood.data_vars)
    assert total == pytest.approx(res.loglik, rel=EXACT)
    assert float(dt.sample_stats["loglik"].squeeze()) == pytest.approx(res.loglik, rel=EXACT)
    with pytest.raises(ValueError, match="LOO needs draws"):
        loo(dt, var_name="y")


# ----------------------------------------------------------------- numbers
def test_summary_mean_and_sd_match_the_estimate(two):
    res, dt = two
    table = az.summary(dt, var_names=["a", "b"], round_to="none")
    for name in ("a", "b"):
        est, se = float(res.params[name]), float(res.se[name])
        mean, sd = table.loc[name, "mean"], table.loc[name, "sd"]
        # real-valued sites: mean of the normal draws = θ̂ ± 4 MCSE (MCSE = se/√S)
        assert abs(mean - est) < 4 * se / np.sqrt(S), (name, mean, est)
        # sd of S normal draws: relative MC error 1/√(2S)
        assert abs(sd / se - 1) < 4 / np.sqrt(2 * S), (name, sd, se)
    # a positive site is drawn on the log scale: the median maps back to θ̂
    med = float(dt.posterior["sigma"].median())
    se_log = float(res.se["sigma"] / res.params["sigma"])
    assert abs(np.log(med / float(res.params["sigma"]))) < 4 * 1.2533 * se_log / np.sqrt(S)


def test_loo_matches_closed_form_leave_one_out(lin):
    """Known σ, flat prior: the normal draws ARE the posterior; exact LOO is closed-form."""
    X, y, res, dt = lin
    Z = np.column_stack([np.ones(len(y)), X])
    H = Z @ np.linalg.solve(Z.T @ Z, Z.T)
    h = np.diag(H)
    e = y - H @ y
    # y_i | y_{-i} ~ N(ŷ_{(-i)}, 1/(1 - h_i)),  y_i − ŷ_{(-i)} = e_i / (1 − h_i)
    var = 1.0 / (1.0 - h)
    ref = float(np.sum(-0.5 * np.log(2 * np.pi * var) - 0.5 * (e / (1 - h)) ** 2 / var))
    plain = az.loo(dt)
    corrected = loo(dt)
    # Monte-Carlo sd of the PSIS estimate at S = 2000, measured over 8 seeds: 0.04 → 5 sd
    assert plain.elpd == pytest.approx(ref, abs=0.2)
    assert corrected.elpd == pytest.approx(ref, abs=0.2)
    assert getattr(corrected, "approx_posterior", False)
    # lppd_i = log N(y_i; ŷ_i, 1 + h_i) (posterior predictive at all data); p_loo = lppd − elpd
    lppd = float(np.sum(-0.5 * np.log(2 * np.pi * (1 + h)) - 0.5 * e**2 / (1 + h)))
    assert plain.p == pytest.approx(lppd - ref, abs=0.2)


def test_compare_ranks_the_true_model(lin):
    X, y, res, dt = lin

    def intercept_only(X, y=None):
        a = numpyro.sample("a", dist.Normal(0, 10))
        with numpyro.plate("obs", X.shape[0]):
            numpyro.sample("y", dist.Normal(a, 1.0), obs=y)

    dt0 = fit_mle(intercept_only, X, y=y).to_datatree(num_samples=S, rng_key=3)
    table = az.compare({"linear": dt, "intercept": dt0})
    assert table.index[0] == "linear"
    assert table.loc["intercept", "elpd_diff"] < -10  # arviz 1.x: elpd_diff ≤ 0, best model 0


def test_several_sites_need_var_name_for_loo(two):
    _, dt = two
    res_y = loo(dt, var_name="y")
    assert res_y.n_data_points == 80
    res_c = loo(dt, var_name="counts")
    assert res_c.n_data_points == 25


# ----------------------------------------------------------------- special sites
def test_vector_observations_keep_event_dims(rng):
    y = rng.normal(size=(40, 3)) * np.array([1.0, 2.0, 0.5]) + np.array([0.0, 1.0, -1.0])
    res = fit_mle(mvn, y=y)
    dt = res.to_datatree(num_samples=200)
    assert dt.log_likelihood["y"].dims == ("chain", "draw", "row")  # one term per event
    assert dt.observed_data["y"].dims == ("row", "y_event_0")
    assert dt.posterior_predictive["y"].shape == (1, 200, 40, 3)
    assert dt.posterior["loc"].dims == ("chain", "draw", "loc_dim_0")
    point = res.to_datatree(num_samples=1, uncertainty=False)
    assert float(point.log_likelihood["y"].sum()) == pytest.approx(res.loglik, rel=EXACT)


def test_masked_observations_are_left_out(rng):
    y = rng.normal(size=30) + 2.0
    keep = np.ones(30, dtype=bool)
    keep[[3, 7, 21]] = False
    res = fit_mle(masked, y=y, keep=keep)
    assert float(res.params["mu"]) == pytest.approx(y[keep].mean(), rel=1e-10)
    dt = res.to_datatree(num_samples=300)
    ll = dt.log_likelihood["y"]
    assert ll.dims == ("chain", "draw", "y_obs")
    np.testing.assert_array_equal(ll["y_obs"].values, np.flatnonzero(keep))
    np.testing.assert_allclose(dt.observed_data["y"].values, y[keep], rtol=EXACT)
    assert dt.posterior_predictive["y"].shape == (1, 300, 27)
    point = res.to_datatree(uncertainty=False, num_samples=1)
    assert float(point.log_likelihood["y"].sum()) == pytest.approx(res.loglik, rel=EXACT)
    assert loo(dt).n_data_points == 27


def test_factor_model_has_no_pointwise_likelihood(rng):
    y = rng.normal(size=10)
    res = fit_mle(with_factor, y=y)
    with pytest.raises(PointwiseLikelihoodError, match=r"numpyro.factor.*log_likelihood=False"):
        res.to_datatree(num_samples=10)
    dt = res.to_datatree(num_samples=10, log_likelihood=False)
    assert "log_likelihood" not in dt.children
    assert set(dt.observed_data.data_vars) == {"y"}


def test_singular_information_cannot_be_sampled(rng):
    def aliased(y=None):
        a = numpyro.sample("a", dist.Normal(0, 10))
        b = numpyro.sample("b", dist.Normal(0, 10))
        with numpyro.plate("obs", y.shape[0]):
            numpyro.sample("y", dist.Normal(a + b, 1.0), obs=y)

    with pytest.warns(MLEWarning) as record:
        res = fit_mle(aliased, y=rng.normal(size=10))
    assert any(issubclass(w.category, HessianWarning) for w in record)
    with pytest.raises(ValueError, match=r"finite covariance.*uncertainty=False"):
        res.to_datatree(num_samples=10)
    assert res.to_datatree(uncertainty=False, num_samples=5).posterior["a"].shape == (1, 1)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"num_samples": 0}, ValueError, "num_samples: expected a positive integer, got 0"),
        ({"num_samples": 2.5}, ValueError, "num_samples: expected a positive integer"),
        ({"uncertainty": "yes"}, TypeError, "uncertainty: expected True or False"),
        ({"rng_key": "seed"}, TypeError, "rng_key: expected"),
        ({"predictions": [1, 2]}, TypeError, "predictions: expected a dict"),
    ],
)
def test_option_validation(two, options, error, match):
    res, _ = two
    with pytest.raises(error, match=match):
        res.to_datatree(**options)


def test_same_key_same_tree(lin):
    _, _, res, dt = lin
    again = res.to_datatree(num_samples=S, rng_key=1)
    np.testing.assert_array_equal(again.posterior["b"].values, dt.posterior["b"].values)
