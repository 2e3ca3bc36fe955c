"""Failure modes are reported, never silent: separation, estimates at infinity, boundaries,
unbounded likelihoods, ridges (non-identifiability) and several optima (issue 7)."""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from jax.scipy.special import ndtr

from mleppl import (
    BoundaryWarning,
    ConvergenceWarning,
    IdentifiabilityWarning,
    MLEWarning,
    MultimodalityWarning,
    SeparationWarning,
    fit_mle,
)


def _fit(model, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fit_mle(model, *args, **kwargs)
    return res, [w.category for w in caught], [str(w.message) for w in caught]


def logit(X, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("n", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ b), obs=y)


def probit(X, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("n", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(probs=ndtr(X @ b)), obs=y)


def poisson(X, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("n", X.shape[0]):
        numpyro.sample("y", dist.Poisson(jnp.exp(X @ b)), obs=y)


@pytest.fixture(scope="module")
def separated():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    X = np.column_stack([np.ones(60), x, rng.normal(size=60)])
    return X, (x > 0.2).astype(float)


@pytest.mark.parametrize("model", [logit, probit], ids=["logit", "probit"])
def test_complete_separation(separated, model):
    X, y = separated
    res, cats, msgs = _fit(model, X, y=y)
    assert SeparationWarning in cats
    assert not res.converged
    assert "separation" in res.message
    assert np.all(np.isnan(res.se["b"]))  # no finite standard error presented as valid
    assert any(k.kind == "separation" and "b" in k.sites for k in res.issues)


def test_poisson_all_zero_cell():
    """A dummy whose cell has only zero counts: its coefficient runs to −∞."""
    rng = np.random.default_rng(1)
    g = np.repeat([0, 1, 2], 20)
    X = np.column_stack([np.ones(60), g == 1, g == 2]).astype(float)
    y = rng.poisson(3.0, size=60).astype(float)
    y[g == 2] = 0.0
    res, cats, _ = _fit(poisson, X, y=y)
    assert SeparationWarning in cats and not res.converged
    assert np.isnan(res.se["b"]).any()


def test_regular_fit_is_not_flagged(separated):
    X, _ = separated
    rng = np.random.default_rng(2)
    y = (rng.uniform(size=60) < 1 / (1 + np.exp(-(X @ [0.2, 1.0, -0.5])))).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MLEWarning)
        res = fit_mle(logit, X, y=y)
    assert res.converged and res.issues == ()


def test_variance_component_on_the_boundary():
    """y ~ N(μ, 1 + τ²) with sample variance < 1: the MLE is τ = 0, on the boundary."""
    rng = np.random.default_rng(3)
    y = 0.5 * rng.normal(size=30)

    def model(y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 10))
        tau = numpyro.sample("tau", dist.HalfNormal(1.0))
        with numpyro.plate("n", 30):
            numpyro.sample("y", dist.Normal(mu, jnp.sqrt(1.0 + tau**2)), obs=y)

    res, cats, _ = _fit(model, y=y)
    assert BoundaryWarning in cats
    assert res.params["tau"] < 1e-4
    assert np.isnan(res.se["tau"]) and np.isfinite(res.se["mu"])
    # closed form; the fit's tolerance (λ ≤ 1.4e-6 SE) leaves ~1e-9 relative here
    np.testing.assert_allclose(res.params["mu"], y.mean(), rtol=1e-8)


def test_unbounded_likelihood_collapsing_mixture():
    rng = np.random.default_rng(4)
    y = rng.normal(size=40)

    def mix(y=None):
        w = numpyro.sample("w", dist.Dirichlet(jnp.ones(2)))
        mu = numpyro.sample("mu", dist.Normal(0, 10).expand([2]).to_event(1))
        s = numpyro.sample("s", dist.HalfNormal(5).expand([2]).to_event(1))
        with numpyro.plate("n", 40):
            numpyro.sample("y", dist.MixtureSameFamily(dist.Categorical(w), dist.Normal(mu, s)), obs=y)

    # started next to the collapse: one component on y[0] with a tiny scale
    init = {"mu": np.array([y[0], 0.0]), "s": np.array([1e-4, 1.0]), "w": np.array([0.5, 0.5])}
    res, cats, msgs = _fit(mix, y=y, init=init)
    assert BoundaryWarning in cats
    assert not res.converged and "unbounded" in res.message
    assert any(k.kind == "unbounded" and "s" in k.sites for k in res.issues)


def test_collinear_design_reports_the_null_direction():
    rng = np.random.default_rng(5)
    x = rng.normal(size=50)
    X = np.column_stack([np.ones(50), x, 2.0 * x])

    def reg(X, y=None):
        b = numpyro.sample("b", dist.Normal(0, 10).expand([3]).to_event(1))
        s = numpyro.sample("s", dist.HalfNormal(5))
        with numpyro.plate("n", 50):
            numpyro.sample("y", dist.Normal(X @ b, s), obs=y)

    y = 1.0 + x + rng.normal(size=50)
    res, cats, msgs = _fit(reg, X, y=y)
    assert IdentifiabilityWarning in cats
    ridge = [k for k in res.issues if k.kind == "ridge"][0]
    # the null direction is 2·b[1] − b[2] (normalized): both coefficients named
    assert "b[1]" in ridge.direction and "b[2]" in ridge.direction
    assert np.isnan(res.se["b"][1]) and np.isnan(res.se["b"][2]) and np.isfinite(res.se["b"][0])
    # the identified combination b1 + 2 b2 is still estimated: OLS on x alone
    slope = np.polyfit(x, y, 1)[0]
    # the reference tier for estimates (conftest REF_EST): np.polyfit is itself a float64 solve
    np.testing.assert_allclose(res.params["b"][1] + 2 * res.params["b"][2], slope, rtol=1e-6)


def test_two_intercepts_are_a_ridge():
    rng = np.random.default_rng(6)
    y = rng.normal(2.0, 1.0, size=40)

    def model(y=None):
        a = numpyro.sample("a", dist.Normal(0, 10))
        c = numpyro.sample("c", dist.Normal(0, 10))
        with numpyro.plate("n", 40):
            numpyro.sample("y", dist.Normal(a + c, 1.0), obs=y)

    res, cats, _ = _fit(model, y=y)
    assert IdentifiabilityWarning in cats
    ridge = [k for k in res.issues if k.kind == "ridge"][0]
    assert set(ridge.sites) == {"a", "c"}


def test_n_starts_finds_the_global_optimum_and_warns():
    """Cauchy location with data at −5 and 5 (and one at 5.5): two local maxima."""
    y = np.array([-5.0, 5.0, 5.5])

    def cauchy(y=None):
        m = numpyro.sample("m", dist.Normal(0, 10))
        with numpyro.plate("n", 3):
            numpyro.sample("y", dist.Cauchy(m, 0.5), obs=y)

    res, cats, msgs = _fit(cauchy, y=y, n_starts=12, init=None, rng_key=3)
    assert MultimodalityWarning in cats
    assert res.optima is not None and len(res.optima) == 12
    assert res.optima.optimum.max() >= 1  # at least two distinct optima
    grid = np.linspace(-8, 8, 20001)
    ll = [np.sum(-np.log1p(((y - m) / 0.5) ** 2)) for m in grid]
    # the reference is a grid with spacing 8e-4: agreement to within about one grid step
    np.testing.assert_allclose(res.params["m"], grid[int(np.argmax(ll))], atol=1e-3)
    assert res.loglik == pytest.approx(res.optima.loglik.max())


def test_n_starts_agrees_with_single_start_on_a_unimodal_problem():
    rng = np.random.default_rng(7)
    y = rng.normal(1.0, 2.0, size=50)

    def model(y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 10))
        s = numpyro.sample("s", dist.HalfNormal(5))
        with numpyro.plate("n", 50):
            numpyro.sample("y", dist.Normal(mu, s), obs=y)

    res = fit_mle(model, y=y, n_starts=6)
    assert res.converged and (res.optima.optimum == 0).all()
    # closed form at the fit tolerance, as in the boundary test above
    np.testing.assert_allclose(res.params["mu"], y.mean(), rtol=1e-8)
    with pytest.raises(ValueError, match="n_starts: expected a positive integer"):
        fit_mle(model, y=y, n_starts=0)


def test_nonconvergence_without_diagnosis_still_warns():
    rng = np.random.default_rng(8)
    y = rng.normal(size=20)

    def model(y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 10))
        with numpyro.plate("n", 20):
            numpyro.sample("y", dist.StudentT(3.0, mu, 1.0), obs=y)

    res, cats, _ = _fit(model, y=y, max_steps=1)
    assert not res.converged and ConvergenceWarning in cats
