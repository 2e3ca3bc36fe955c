"""Predictive draws: plug-in and with parameter uncertainty, the predictions group.

Monte-Carlo checks allow 4 Monte-Carlo standard errors (stated per test).
"""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints

from mleppl import fit_mle

S = 4000


def regression(X, y=None):
    a = numpyro.sample("a", dist.Normal(0, 10))
    b = numpyro.sample("b", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("obs", X.shape[0]):
        mu = numpyro.deterministic("mu", a + X @ b)
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


@pytest.fixture(scope="module")
def fit(rng):
    X = rng.normal(size=(80, 2))
    y = 1.0 + X @ np.array([0.5, -1.0]) + 0.7 * rng.normal(size=80)
    return X, y, fit_mle(regression, X, y=y)


X_NEW = np.array([[0.0, 0.0], [1.0, -2.0], [3.0, 3.0]])


def _mu_hat(res, x):
    return float(res.params["a"]) + x @ np.asarray(res.params["b"])


def test_plug_in_draws_follow_the_fitted_likelihood(fit):
    _, _, res = fit
    d = res.predictive(0, X_NEW, num_samples=S)
    assert set(d) == {"y", "mu"}  # observed site (y=None) and deterministic; no parameters
    assert d["y"].shape == (S, 3)
    mu, sigma = _mu_hat(res, X_NEW), float(res.params["sigma"])
    np.testing.assert_allclose(d["mu"], np.broadcast_to(mu, (S, 3)), rtol=1e-12)
    assert np.all(np.abs(d["y"].mean(0) - mu) < 4 * sigma / np.sqrt(S))
    assert np.all(np.abs(d["y"].std(0) / sigma - 1) < 4 / np.sqrt(2 * S))


def test_uncertainty_adds_the_estimators_variance(fit):
    _, _, res = fit
    d = res.predictive(1, X_NEW, num_samples=S, uncertainty=True)
    # μ(x) = a + x·b is linear in (a, b): its draws are exactly normal with the delta-method sd
    g = np.column_stack([np.ones(3), X_NEW])  # d μ / d(a, b)
    cov_ab = np.asarray(res.cov)[:3, :3]
    se_mu = np.sqrt(np.einsum("ij,jk,ik->i", g, cov_ab, g))
    sd = d["mu"].std(0)
    assert np.all(np.abs(sd / se_mu - 1) < 4 / np.sqrt(2 * S)), (sd, se_mu)
    # predictive variance = σ² (approximately, E over draws) + Var μ: wider than plug-in
    total = d["y"].var(0)
    expected = float(res.params["sigma"]) ** 2 + se_mu**2
    assert np.all(np.abs(total / expected - 1) < 0.1)  # 4 MCSE of a variance at S = 4000 ≈ 0.09
    assert np.all(total > float(res.params["sigma"]) ** 2)


def test_observed_site_is_returned_unchanged_when_data_are_given(fit):
    X, y, res = fit
    d = res.predictive(0, X[:5], y=y[:5], num_samples=10)
    np.testing.assert_array_equal(d["y"], np.broadcast_to(y[:5], (10, 5)))


def test_no_arguments_replicates_the_fitted_data(fit):
    X, y, res = fit
    d = res.predictive(2, num_samples=500)
    assert d["y"].shape == (500, 80) and d["mu"].shape == (500, 80)
    resid = (d["y"] - _mu_hat(res, X)) / float(res.params["sigma"])
    assert abs(resid.mean()) < 4 / np.sqrt(resid.size)
    assert abs(resid.std() - 1) < 4 / np.sqrt(2 * resid.size)


def test_predictions_group(fit):
    _, _, res = fit
    draws = res.predictive(3, X_NEW, num_samples=200, uncertainty=True)
    dt = res.to_datatree(num_samples=200, predictions=draws, predictions_constant_data={"X": X_NEW})
    assert dt.predictions["y"].shape == (1, 200, 3)
    assert dt.predictions["y"].dims == ("chain", "draw", "obs")
    np.testing.assert_array_equal(dt.predictions_constant_data["X"].values, X_NEW)


def test_same_key_same_draws_and_inputs_untouched(fit):
    _, _, res = fit
    x = X_NEW.copy()
    x.flags.writeable = False
    a = res.predictive(7, x, num_samples=50, uncertainty=True)
    b = res.predictive(7, x, num_samples=50, uncertainty=True)
    np.testing.assert_array_equal(a["y"], b["y"])
    np.testing.assert_array_equal(x, X_NEW)


def test_param_sites_and_bounded_parameters(rng):
    def model(y=None):
        rate = numpyro.param("rate", 1.0, constraint=constraints.positive)
        with numpyro.plate("obs", 50 if y is None else y.shape[0]):
            numpyro.sample("y", dist.Exponential(rate), obs=y)

    y = rng.exponential(0.5, size=50)
    res = fit_mle(model, y=y)
    assert float(res.params["rate"]) == pytest.approx(1 / y.mean(), rel=1e-8)
    d = res.predictive(0, num_samples=300, uncertainty=True)
    assert d["y"].shape == (300, 50) and np.all(d["y"] > 0)
    new = res.predictive(0, num_samples=300, uncertainty=True, y=None)
    assert new["y"].shape == (300, 50)


@pytest.mark.parametrize(
    ("key", "options", "error", "match"),
    [
        (0, {"num_samples": -1}, ValueError, "num_samples: expected a positive integer, got -1"),
        (0, {"uncertainty": 1}, TypeError, "uncertainty: expected True or False"),
        ("k", {}, TypeError, "rng_key: expected a jax.random.PRNGKey, an int seed or None, got str"),
    ],
)
def test_validation(fit, key, options, error, match):
    _, _, res = fit
    with pytest.raises(error, match=match):
        res.predictive(key, X_NEW, **options)
