"""fit_mle on every kind of site and support, against closed forms; the objective's
identity with NumPyro's SVI loss; float64, immutability and compilation caching."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from conftest import EXACT, REF_EST, REF_SE, assert_rel
from numpyro import handlers
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoDelta
from numpyro.infer.initialization import init_to_value

import mleppl
from mleppl import fit_mle, negloglik
from mleppl.core import cache

# closed-form MLEs are checked at the reference tier: the optimizer's own tolerance
CLOSED = REF_EST


def test_unit_interval_binomial(rng):
    trials = rng.integers(5, 20, size=40)
    y = rng.binomial(trials, 0.3)

    def model(trials, y=None):
        p = numpyro.sample("p", dist.Beta(2, 2))
        with numpyro.plate("obs", trials.shape[0]):
            numpyro.sample("y", dist.Binomial(trials, p), obs=y)

    res = fit_mle(model, trials, y=y)
    p_hat = y.sum() / trials.sum()
    assert_rel(res.params["p"], p_hat, CLOSED, "p̂")
    assert_rel(res.se["p"], np.sqrt(p_hat * (1 - p_hat) / trials.sum()), REF_SE, "se")


def test_simplex_categorical_counts(rng):
    y = rng.choice(4, size=500, p=[0.1, 0.2, 0.3, 0.4])

    def model(y=None):
        w = numpyro.sample("w", dist.Dirichlet(jnp.ones(4)))
        with numpyro.plate("obs", 500):
            numpyro.sample("y", dist.Categorical(w), obs=y)

    res = fit_mle(model, y=y)
    w_hat = np.bincount(y, minlength=4) / 500
    assert res.n_params == 3  # a simplex of 4 has 3 degrees of freedom
    assert_rel(res.params["w"], w_hat, CLOSED, "ŵ = proportions")
    multinomial_cov = (np.diag(w_hat) - np.outer(w_hat, w_hat)) / 500
    assert_rel(res.cov, multinomial_cov, REF_SE, "multinomial covariance")


def test_ordered_cutpoints_closed_form(rng):
    y = rng.choice(4, size=400, p=[0.2, 0.3, 0.1, 0.4])

    def model(y=None):
        c = numpyro.sample(
            "c",
            dist.TransformedDistribution(dist.Normal(0, 5).expand([3]), dist.transforms.OrderedTransform()),
        )
        with numpyro.plate("obs", 400):
            numpyro.sample("y", dist.OrderedLogistic(0.0, c), obs=y)

    res = fit_mle(model, y=y)
    cum = np.cumsum(np.bincount(y, minlength=4))[:3] / 400
    assert_rel(res.params["c"], np.log(cum / (1 - cum)), CLOSED, "ĉ = logit(cumulative proportions)")


def test_cholesky_correlation_and_scales(rng):
    S_true = np.array([[1.0, 0.6, -0.3], [0.6, 2.0, 0.2], [-0.3, 0.2, 0.5]])
    Y = rng.multivariate_normal(np.zeros(3), S_true, size=300)

    def model(Y=None):
        L = numpyro.sample("L", dist.LKJCholesky(3, 2.0))
        sigma = numpyro.sample("sigma", dist.HalfNormal(2.0).expand([3]).to_event(1))
        with numpyro.plate("obs", 300):
            numpyro.sample("Y", dist.MultivariateNormal(jnp.zeros(3), scale_tril=sigma[:, None] * L), obs=Y)

    res = fit_mle(model, Y=Y)
    S = Y.T @ Y / 300  # MLE of Σ with known zero mean
    sd = np.sqrt(np.diag(S))
    R = S / np.outer(sd, sd)
    L_hat = res.params["L"]
    assert_rel(res.params["sigma"], sd, CLOSED, "σ̂")
    assert_rel(L_hat @ L_hat.T, R, CLOSED, "R̂ = sample correlation")
    assert res.n_params == 3 + 3  # 3 free correlations + 3 scales
    assert res.nobs == 300  # an event of a vector-valued site counts once


def test_sites_inside_plates_group_means(rng):
    g = np.repeat(np.arange(4), 25)
    y = rng.normal(np.array([0.0, 1.0, 2.0, 3.0])[g], 1.0)

    def model(g, y=None):
        with numpyro.plate("groups", 4):
            mu = numpyro.sample("mu", dist.Normal(0, 10))
        sigma = numpyro.sample("sigma", dist.HalfNormal(5))
        with numpyro.plate("obs", g.shape[0]):
            numpyro.sample("y", dist.Normal(mu[g], sigma), obs=y)

    res = fit_mle(model, g, y=y)
    means = np.array([y[g == k].mean() for k in range(4)])
    assert_rel(res.params["mu"], means, CLOSED, "group means")
    sigma2 = np.mean((y - means[g]) ** 2)
    assert_rel(res.se["mu"], np.sqrt(sigma2 / 25), REF_SE, "se = σ̂/√n_g")
    assert res.param_names[:4] == ["mu[0]", "mu[1]", "mu[2]", "mu[3]"]


def test_param_sites_with_constraints(rng):
    y = rng.normal(2.0, 1.5, size=100)

    def model(y=None):
        mu = numpyro.param("mu", 0.0)
        sigma = numpyro.param("sigma", 1.0, constraint=dist.constraints.positive)
        with numpyro.plate("obs", 100):
            numpyro.sample("y", dist.Normal(mu, sigma), obs=y)

    res = fit_mle(model, y=y)
    assert_rel(res.params["mu"], y.mean(), CLOSED, "mean")
    assert_rel(res.params["sigma"], y.std(), CLOSED, "σ̂ = sd with divisor n")


def test_obs_mask_uses_only_observed_entries(rng):
    y = rng.normal(1.0, 2.0, size=60)
    mask = rng.uniform(size=60) < 0.7
    y_filled = np.where(mask, y, 1e6)  # masked entries are never looked at

    def model(mask, y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 10))
        sigma = numpyro.sample("sigma", dist.HalfNormal(5))
        with numpyro.plate("obs", 60):
            numpyro.sample("y", dist.Normal(mu, sigma), obs=y, obs_mask=mask)

    res = fit_mle(model, mask, y=y_filled)
    assert res.nobs == int(mask.sum())
    assert res.param_names == ["mu", "sigma"]  # the imputed site is not a parameter
    assert_rel(res.params["mu"], y[mask].mean(), CLOSED, "mean of observed")
    assert_rel(res.params["sigma"], y[mask].std(), CLOSED, "sd of observed")


def test_scale_handler_multiplies_loglik(rng):
    y = rng.normal(size=30)

    def model(y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 10))
        with numpyro.plate("obs", 30):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    base = fit_mle(model, y=y)
    scaled = fit_mle(handlers.scale(model, 2.0), y=y)
    assert_rel(scaled.loglik, 2 * base.loglik, EXACT, "loglik × 2")
    assert_rel(scaled.params["mu"], base.params["mu"], CLOSED, "same estimate")
    assert_rel(scaled.se["mu"], base.se["mu"] / np.sqrt(2), REF_SE, "se / √2")


def test_deterministic_sites_get_delta_method_se(rng):
    n = 200
    x = rng.normal(size=n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(0.3 + 0.8 * x)))).astype(float)

    def model(x, y=None):
        b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
        numpyro.deterministic("odds_ratio", jnp.exp(b[1]))
        with numpyro.plate("obs", x.shape[0]):
            numpyro.sample("y", dist.Bernoulli(logits=b[0] + b[1] * x), obs=y)

    res = fit_mle(model, x, y=y)
    b1, se1 = res.params["b"][1], res.se["b"][1]
    assert_rel(res.deterministic["odds_ratio"], np.exp(b1), EXACT, "odds ratio")
    assert_rel(res.deterministic_se["odds_ratio"], np.exp(b1) * se1, REF_SE, "delta method")
    table = res.summary(include_deterministic=True)
    assert "odds_ratio" in table.index


def test_objective_equals_trace_elbo_of_autodelta_on_prior_free_model(rng):
    n = 80
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [1.0, 2.0] + rng.normal(size=n)

    def model(X, y=None):
        beta = numpyro.sample("beta", dist.Normal(0, 10).expand([2]).to_event(1))
        sigma = numpyro.sample("sigma", dist.HalfNormal(5))
        with numpyro.plate("obs", X.shape[0]):
            numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)

    nll = negloglik(model, X, y=y)
    res = fit_mle(model, X, y=y)
    with jax.enable_x64(True):
        for point in ({"beta": np.array([0.5, 1.0]), "sigma": 2.0}, dict(res.params)):
            guide = AutoDelta(nll.prior_free_model, init_loc_fn=init_to_value(values=point))
            svi = SVI(nll.prior_free_model, guide, numpyro.optim.Adam(1e-3), Trace_ELBO())
            state = svi.init(jax.random.PRNGKey(0), *nll.args, **nll.kwargs)
            loss = float(svi.evaluate(state, *nll.args, **nll.kwargs))
            assert_rel(loss, float(nll.fun(nll.unconstrain(point))), EXACT, "ELBO loss = NLL")
        assert_rel(loss, -res.loglik, EXACT, "ELBO loss at θ̂ = −loglik")


def test_float64_whatever_the_global_setting_and_setting_restored(rng):
    y = rng.normal(size=20)

    def model(y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 10))
        with numpyro.plate("obs", 20):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    before = jax.config.jax_enable_x64
    with pytest.warns(mleppl.PrecisionWarning, match="argument 'y': got float32"):
        res = fit_mle(model, y=jnp.asarray(y, dtype=jnp.float32))
    assert jax.config.jax_enable_x64 == before
    assert res.params["mu"].dtype == np.float64 and res.cov.dtype == np.float64
    # float32 input is converted, not truncated: the mean of the float32 data exactly
    assert_rel(res.params["mu"], np.asarray(y, dtype=np.float32).astype(np.float64).mean(), 1e-12, "mean")


def test_result_is_immutable_and_inputs_untouched(rng):
    X = np.column_stack([np.ones(30), rng.normal(size=30)])
    y = rng.normal(size=30)
    X0, y0 = X.copy(), y.copy()

    def model(X, y=None):
        beta = numpyro.sample("beta", dist.Normal(0, 10).expand([2]).to_event(1))
        with numpyro.plate("obs", 30):
            numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)

    res = fit_mle(model, X, y=y)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.loglik = 0.0
    with pytest.raises(ValueError):
        res.params["beta"][0] = 1.0
    with pytest.raises(TypeError):
        res.params["beta"] = 1.0
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_second_fit_of_same_shapes_does_not_recompile(rng):
    def model(X, y=None):
        beta = numpyro.sample("beta", dist.Normal(0, 10).expand([2]).to_event(1))
        with numpyro.plate("obs", X.shape[0]):
            numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)

    X = np.column_stack([np.ones(40), rng.normal(size=40)])
    fit_mle(model, X, y=rng.normal(size=40))
    n_programs = mleppl.cache_info()["size"]
    prog = [p for k, p in cache.items() if k[0] is model and "fit" in k][0]
    compiled = prog._cache_size()
    res = fit_mle(model, X * 2.0, y=rng.normal(size=40))
    assert res.converged
    assert mleppl.cache_info()["size"] == n_programs
    assert prog._cache_size() == compiled


def test_random_effects_fit_compiled_ahead_once_each(rng):
    """The fit program compiled in the background and the conditional-modes program compiled
    ahead are each compiled once (the call reuses the ahead compilation), and the fit equals
    one whose programs compile on first call."""
    compiles = []

    def listen(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(str(kw.get("fun_name", "")))

    def model(x, g, n_groups, y=None):
        b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
        s = numpyro.sample("s", dist.HalfNormal(2))
        with numpyro.plate("group", n_groups):
            u = numpyro.sample("u", dist.Normal(0, s))
        with numpyro.plate("obs", x.shape[0]):
            numpyro.sample("y", dist.Poisson(jnp.exp(b[0] + b[1] * x + u[g])), obs=y)

    g = np.repeat(np.arange(12), 6)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.3 + 0.5 * x + rng.normal(0, 0.5, 12)[g])).astype(np.float64)
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        res = fit_mle(model, x, g, 12, y=y, random=["u"])
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiles.count("jit(mleppl_fit)") == 1
    assert compiles.count("jit(mleppl_conditional)") == 1
    mleppl.clear_cache()  # the same fit with every program compiled on its first call
    progs = []
    orig = cache.Program.ahead, cache.Program.ahead_here
    try:
        cache.Program.ahead = cache.Program.ahead_here = lambda self, *a: progs.append(self)
        again = fit_mle(model, x, g, 12, y=y, random=["u"])
    finally:
        cache.Program.ahead, cache.Program.ahead_here = orig
    assert len(progs) == 2
    np.testing.assert_array_equal(res.params["b"], again.params["b"])
    np.testing.assert_array_equal(res.se["b"], again.se["b"])
    np.testing.assert_array_equal(res.random_modes["u"], again.random_modes["u"])


def test_random_effects_fit_with_data_held_as_constants(rng):
    """A random-effects model that uses NumPy on its data (the data held as constants, its
    programs hoisted and traced on their call: nothing to compile ahead) fits, and equals the
    same model written with jax.numpy."""

    def make(xp):
        def model(x, g, n_groups, y=None):
            b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
            s = numpyro.sample("s", dist.HalfNormal(2))
            xs = xp.asarray(x) * 1.0
            with numpyro.plate("group", n_groups):
                u = numpyro.sample("u", dist.Normal(0, s))
            with numpyro.plate("obs", xs.shape[0]):
                numpyro.sample("y", dist.Poisson(jnp.exp(b[0] + b[1] * xs + u[g])), obs=y)

        return model

    g = np.repeat(np.arange(12), 6)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.3 + 0.5 * x + rng.normal(0, 0.5, 12)[g])).astype(np.float64)
    res = fit_mle(make(np), x, g, 12, y=y, random=["u"])
    ref = fit_mle(make(jnp), x, g, 12, y=y, random=["u"])
    assert res.problem.constants and not ref.problem.constants
    assert res.converged
    # the same floats in another order of evaluation: equal to the stopping rule (tol 1e-12)
    np.testing.assert_allclose(res.params["b"], ref.params["b"], rtol=1e-8)
    np.testing.assert_allclose(res.se["b"], ref.se["b"], rtol=1e-6)
