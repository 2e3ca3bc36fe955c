"""method="svi" and models with plate(..., subsample_size=B): stochastic fits judged on the full data."""

from __future__ import annotations

import pickle

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro import handlers

from mleppl import ConvergenceWarning, Status, fit_many, fit_mle, negloglik

RNG = np.random.default_rng(20261127)
N, P = 20_000, 4
X = RNG.normal(size=(N, P))
Y = (RNG.random(N) < 1 / (1 + np.exp(-(0.3 + X @ np.array([0.5, -1.0, 0.25, 0.0]))))).astype(float)
# a smaller data set for the checks that are not the issue's target
XS, YS = X[:3000], Y[:3000]


def logit_batched(X, y=None, batch=1000):
    a = numpyro.sample("a", dist.Normal(0, 5))
    b = numpyro.sample("b", dist.Normal(0, 5).expand([X.shape[1]]))
    with numpyro.plate("n", X.shape[0], subsample_size=batch) as idx:
        numpyro.sample("y", dist.Bernoulli(logits=a + X[idx] @ b), obs=y[idx])


def logit(X, y=None):
    a = numpyro.sample("a", dist.Normal(0, 5))
    b = numpyro.sample("b", dist.Normal(0, 5).expand([X.shape[1]]))
    with numpyro.plate("n", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=a + X @ b), obs=y)


def normal(x, y=None):
    mu = numpyro.sample("mu", dist.Normal(0, 10))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Normal(mu + 0.5 * x, sigma), obs=y)


def distance_in_se(res, ref) -> np.ndarray:
    return np.abs(res.estimate - ref.estimate) / ref.bse


@pytest.fixture(scope="module")
def exact():
    return fit_mle(logit, X, y=Y)


@pytest.fixture(scope="module")
def stochastic():
    return fit_mle(logit_batched, X, y=Y)


def test_issue_target_subsampled_logistic_regression(exact, stochastic):
    # n = 20,000 rows, batches of 1,000: estimates within 0.05 SE, SEs within 2 %
    assert stochastic.method == "svi" and stochastic.converged
    assert distance_in_se(stochastic, exact).max() <= 0.05
    np.testing.assert_allclose(stochastic.bse, exact.bse, rtol=0.02)
    # the full-data finish makes it the exact MLE, SEs from the full-data information
    assert distance_in_se(stochastic, exact).max() < 1e-8
    np.testing.assert_allclose(stochastic.bse, exact.bse, rtol=1e-8)
    assert stochastic.loglik == pytest.approx(exact.loglik, abs=1e-8)
    assert stochastic.nobs == N


def test_stochastic_phase_error_is_judged_in_standard_errors(exact, stochastic):
    info = stochastic.svi
    assert info["stop"] == "tol" and info["decrement_svi"] <= info["tol"]
    assert info["batches"] == (("n", N, 1000),)
    # λ at the SVI estimate is its Mahalanobis distance to the exact maximum (second order)
    dz = info["z_svi"] - exact.z
    mahalanobis = float(np.sqrt(dz @ exact.hessian @ dz))
    assert info["decrement_svi"] == pytest.approx(mahalanobis, rel=0.05)
    assert 0 < info["steps"] <= info["num_steps"] and info["steps"] % info["check_every"] == 0
    hist = info["history"]
    assert hist.shape == (info["steps"] // info["check_every"], 4)
    assert hist[-1, 3] == info["decrement_svi"]
    assert "stochastic fit (SVI, AutoDelta" in stochastic.message
    assert "minibatches of 1000 of 20000 rows (plate 'n')" in stochastic.message
    assert f"λ = {info['decrement_svi']:.3g}" in stochastic.message
    assert stochastic.n_steps == info["steps"] + info["newton_steps"]


def test_exact_method_on_subsampled_model_fits_every_row(exact):
    res = fit_mle(logit_batched, XS, y=YS, batch=100, method="newton")
    ref = fit_mle(logit, XS, y=YS)
    assert res.method == "newton" and res.converged and res.svi is None
    assert distance_in_se(res, ref).max() < 1e-9
    assert res.loglik == pytest.approx(ref.loglik, abs=1e-9)
    # the negative log-likelihood covers every row (in chunks of rows): subsampling does not change it
    nll = negloglik(logit_batched, X, y=Y)
    assert nll.nobs == N
    assert float(nll.fun(exact.z)) == pytest.approx(-exact.loglik, rel=1e-13)


def test_svi_on_a_model_without_subsampling_equals_the_exact_fit():
    x = np.linspace(-1, 1, 50)
    y = 1.0 + 0.5 * x + np.sin(7 * x)
    ref = fit_mle(normal, x, y=y)
    res = fit_mle(normal, x, y=y, method="svi")
    assert res.method == "svi" and res.converged
    np.testing.assert_allclose(res.estimate, ref.estimate, rtol=1e-9)
    np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-7)
    assert res.svi["batches"] == ()
    assert "the full data each step (no subsampled plate)" in res.message


def test_pure_stochastic_fit_reports_its_tolerance():
    res = fit_mle(logit_batched, XS, y=YS, batch=100, svi_options={"newton_steps": 0, "tol": 1.0})
    ref = fit_mle(logit, XS, y=YS)
    assert res.status == Status.STOCHASTIC and res.converged
    assert res.svi["newton_steps"] == 0 and res.svi["decrement_svi"] <= 1.0
    # the estimate is the SVI estimate itself, at most ~tol standard errors from the optimum
    np.testing.assert_array_equal(res.z, res.svi["z_svi"])
    assert distance_in_se(res, ref).max() <= 1.0
    assert "within svi_options['tol'] standard errors" in res.message


def test_too_short_budget_is_not_converged():
    with pytest.warns(ConvergenceWarning, match="stochastic fit"):
        res = fit_mle(logit_batched, XS, y=YS, batch=100, svi_options={"num_steps": 30, "newton_steps": 0})
    assert not res.converged and res.status == Status.MAX_STEPS
    assert res.svi["stop"] == "budget" and res.svi["decrement_svi"] > res.svi["tol"]
    assert "step budget spent" in res.message


def test_rng_key_draws_other_minibatches():
    base = fit_mle(logit_batched, XS, y=YS, batch=100)
    other = fit_mle(logit_batched, XS, y=YS, batch=100, rng_key=1)
    assert not np.array_equal(base.svi["z_svi"], other.svi["z_svi"])
    np.testing.assert_allclose(other.estimate, base.estimate, rtol=1e-9)


def test_seeded_model_would_see_one_minibatch_and_is_refused():
    # handlers.seed inside the model wins over SVI's key: every step would see the same rows
    with pytest.raises(ValueError, match=r"plate\(s\) \['n'\] draw the same minibatch.*handlers.seed"):
        fit_mle(handlers.seed(logit_batched, 0), XS, y=YS, batch=100)
    # the exact methods fit every row and are unaffected
    res = fit_mle(handlers.seed(logit_batched, 0), XS, y=YS, batch=100, method="newton")
    assert res.converged and res.nobs == len(YS)


def test_result_pickles_with_its_model(stochastic):
    back = pickle.loads(pickle.dumps(stochastic))
    assert back.svi["steps"] == stochastic.svi["steps"]
    assert back.problem.model == stochastic.problem.model
    np.testing.assert_array_equal(back.summary().values, stochastic.summary().values)


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"num_steps": 0}, ValueError, r"svi_options\['num_steps'\]: expected an integer ≥ 1, got 0"),
        ({"learning_rate": -0.1}, ValueError, r"svi_options\['learning_rate'\]: expected a positive"),
        ({"tol": float("nan")}, ValueError, r"svi_options\['tol'\]: expected a positive finite"),
        ({"newton_steps": 1.5}, ValueError, r"svi_options\['newton_steps'\]: expected an integer"),
        ({"warmup": 50, "num_steps": 50}, ValueError, r"svi_options\['warmup'\]: expected fewer"),
        ({"lr": 0.1}, ValueError, r"svi_options: expected keys among .* got unknown \['lr'\]"),
        ("fast", TypeError, r"svi_options: expected a dict, got str"),
    ],
)
def test_bad_options_are_named(options, error, match):
    with pytest.raises(error, match=match):
        fit_mle(logit_batched, XS, y=YS, svi_options=options)


def test_svi_refuses_options_it_does_not_use():
    with pytest.raises(ValueError, match=r"n_starts: expected 1 with method='svi', got 2"):
        fit_mle(logit_batched, XS, y=YS, n_starts=2)
    with pytest.raises(ValueError, match=r"max_steps: expected None with method='svi'"):
        fit_mle(logit_batched, XS, y=YS, max_steps=10)
    with pytest.raises(ValueError, match=r"method: expected one of the exact methods for fit_many"):
        fit_many(logit, XS, y=np.stack([YS, YS]), method="svi")
