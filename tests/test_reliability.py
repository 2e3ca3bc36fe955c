"""Reliability (issue 21): ordinary inputs that crashed, and diagnoses that were wrong.

Each test fails on the code before the fix it covers; where the fix is a refusal, the
message must name the argument or site and say what was expected and what was got.
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest
from scipy import optimize, stats

import mleppl


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = fn(*args, **kwargs)
    return res, [w.category for w in rec], [str(w.message) for w in rec]


# ---- item 7: pandas Series as data --------------------------------------------------------


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=50)})
    df["y"] = 1 + 2 * df.x + rng.normal(size=50)
    df["k"] = rng.poisson(np.exp(0.5 + 0.3 * df.x))
    return df


def _ols(x, y):
    X = np.column_stack([np.ones_like(x), x])
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    return beta, np.sqrt(np.mean((y - X @ beta) ** 2))


def test_series_into_a_numpy_using_model(frame):
    """A model that applies NumPy to its covariate is held as constants; a Series ``y`` then
    reached NumPyro's log-density as a Series (TracerArrayConversionError)."""

    def lm(x, y=None):
        a = numpyro.sample("a", dist.Normal(0, 10))
        b = numpyro.sample("b", dist.Normal(0, 10))
        s = numpyro.sample("s", dist.HalfNormal(5))
        xc = np.asarray(x) - np.mean(x)
        with numpyro.plate("n", len(x)):
            numpyro.sample("y", dist.Normal(a + b * xc, s), obs=y)

    res = mleppl.fit_mle(lm, frame["x"], y=frame["y"])
    x = frame["x"].to_numpy()
    beta, sigma = _ols(x - x.mean(), frame["y"].to_numpy())
    assert res.converged
    np.testing.assert_allclose([res.params["a"], res.params["b"], res.params["s"]], [*beta, sigma], rtol=1e-8)


def test_series_counts_into_a_numpy_using_poisson_model(frame):
    def pm(x, y=None):
        a = numpyro.sample("a", dist.Normal(0, 10))
        b = numpyro.sample("b", dist.Normal(0, 10))
        xx = np.log1p(np.exp(np.asarray(x)))
        with numpyro.plate("n", len(x)):
            numpyro.sample("y", dist.Poisson(jnp.exp(a + b * xx)), obs=y)

    res = mleppl.fit_mle(pm, frame["x"], y=frame["k"])
    ref = mleppl.fit_mle(pm, frame["x"].to_numpy(), y=frame["k"].to_numpy())
    np.testing.assert_allclose(res.params["b"], ref.params["b"], rtol=1e-10)
    np.testing.assert_allclose(res.loglik, ref.loglik, rtol=1e-12)


# ---- item 7a: index data out of range -----------------------------------------------------


def _grouped(g, y=None, G=10):
    s = numpyro.sample("s", dist.HalfNormal(1))
    mu = numpyro.sample("mu", dist.Normal(0, 1))
    with numpyro.plate("grp", G):
        u = numpyro.sample("u", dist.Normal(0, s))
    with numpyro.plate("n", g.shape[0]):
        numpyro.sample("y", dist.Normal(mu + u[g], 1.0), obs=y)


def _fixed_groups(g, y=None, G=10):
    a = numpyro.sample("a", dist.Normal(0, 1).expand([G]).to_event(1))
    with numpyro.plate("n", g.shape[0]):
        numpyro.sample("y", dist.Normal(jnp.take(a, g), 1.0), obs=y)


@pytest.fixture(scope="module")
def codes():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 10, 200)
    return g, rng.normal(g * 0.1, 1.0)


@pytest.mark.parametrize("model, extra", [(_grouped, {"random": ["u"]}), (_fixed_groups, {})])
def test_one_based_codes_are_refused_naming_the_argument(codes, model, extra):
    g, y = codes
    with pytest.raises(
        ValueError, match=r"argument 'g': expected index values in 0\.\.9 .* got values from 1 to 10.*1-based"
    ):
        mleppl.fit_mle(model, g + 1, y=y, **extra)


def test_plate_smaller_than_the_codes_is_refused(codes):
    g, y = codes
    with pytest.raises(
        ValueError, match=r"argument 'g': expected index values in 0\.\.7 .*got values from 0 to 9"
    ):
        mleppl.fit_mle(_grouped, g, y=y, G=8, random=["u"])


def test_missing_category_code_is_refused(codes):
    g, y = codes
    g = g.copy()
    g[3] = -1  # pandas' code of a missing category
    with pytest.raises(ValueError, match=r"argument 'g'.*got values from -1.*negative codes"):
        mleppl.fit_mle(_fixed_groups, g, y=y)


def test_zero_based_codes_fit_as_before(codes):
    g, y = codes
    res = mleppl.fit_mle(_fixed_groups, g, y=y)
    means = np.array([y[g == k].mean() for k in range(10)])
    np.testing.assert_allclose(res.params["a"], means, rtol=1e-9)


# ---- item 9: a model invalid at the default start -------------------------------------------


@pytest.fixture(scope="module")
def gamma_data():
    rng = np.random.default_rng(4)
    x = rng.uniform(1, 3, 200)
    return x, rng.gamma(2.0, (2 + 3 * x) / 2.0)


def _gamma_ref(x, y, shift=0.0):
    def nll(p):
        b0, b1, logk = p
        mu = b0 - shift + b1 * x
        if np.any(mu <= 0):
            return np.inf
        k = np.exp(logk)
        return -np.sum(stats.gamma.logpdf(y, k, scale=mu / k))

    return optimize.minimize(
        nll,
        [2.0 + shift, 3.0, 0.5],
        method="Nelder-Mead",
        options=dict(xatol=1e-10, fatol=1e-12, maxiter=20000),
    )


@pytest.mark.parametrize("shift", [0.0, 5.0])
def test_identity_link_gamma_invalid_at_the_start(gamma_data, shift):
    """rate = k / (b0 − shift + b1·x) is invalid at b = 0: NumPyro's own ValueError escaped
    from the start search (shift 0) and from the first trace (shift 5)."""
    x, y = gamma_data

    def gm(x, y=None):
        b0 = numpyro.sample("b0", dist.Normal(0, 10))
        b1 = numpyro.sample("b1", dist.Normal(0, 10))
        k = numpyro.sample("k", dist.HalfNormal(5))
        with numpyro.plate("n", len(x)):
            numpyro.sample("y", dist.Gamma(k, k / (b0 - shift + b1 * x)), obs=y)

    res = mleppl.fit_mle(gm, x, y=y)
    ref = _gamma_ref(x, y, shift)
    assert res.converged
    np.testing.assert_allclose(res.loglik, -ref.fun, rtol=1e-9)
    # the reference is Nelder–Mead (xatol 1e-10 in a flat valley): its estimates, not ours, limit this
    np.testing.assert_allclose([res.params["b0"], res.params["b1"]], ref.x[:2], rtol=1e-5)


# ---- item 10: the support of y moves with an enumerated latent ------------------------------


def test_n_mixture_binds_and_matches_the_summed_likelihood():
    rng = np.random.default_rng(5)
    R, T, n_max = 40, 3, 20
    n_true = rng.poisson(4.0, R)
    Y = rng.binomial(n_true[:, None], 0.4, (R, T)).astype(float)

    def nmix(Y=None):
        lam = numpyro.sample("lam", dist.HalfNormal(10))
        p = numpyro.sample("p", dist.Beta(1, 1))
        with numpyro.plate("site", Y.shape[0]):
            N = numpyro.sample(
                "N",
                dist.Categorical(logits=dist.Poisson(lam).log_prob(jnp.arange(n_max))),
                infer={"enumerate": "parallel"},
            )
            with numpyro.plate("visit", Y.shape[1], dim=-2):
                numpyro.sample("y", dist.Binomial(N, p), obs=Y.T)

    res = mleppl.fit_mle(nmix, Y=Y)
    ns = np.arange(n_max)

    def loglik(lam, p):
        prior = stats.poisson.logpmf(ns, lam)
        prior -= np.logaddexp.reduce(prior)  # the truncated, renormalized Categorical
        terms = prior[None, :] + stats.binom.logpmf(Y[:, :, None], ns[None, None, :], p).sum(1)
        return np.sum(np.logaddexp.reduce(terms, axis=1))

    assert res.converged
    np.testing.assert_allclose(res.loglik, loglik(res.params["lam"], res.params["p"]), rtol=1e-10)
    opt = optimize.minimize(
        lambda q: -loglik(np.exp(q[0]), 1 / (1 + np.exp(-q[1]))), [1.0, 0.0], method="BFGS"
    )
    np.testing.assert_allclose(res.loglik, -opt.fun, atol=1e-6)


# ---- item 1: a support that depends on a parameter ------------------------------------------


def _uniform(y=None):
    th = numpyro.sample("theta", dist.Exponential(1.0))
    with numpyro.plate("n", y.shape[0]):
        numpyro.sample("y", dist.Uniform(0, th), obs=y)


@pytest.mark.parametrize("init", [None, {"theta": 6.0}])
def test_parameter_dependent_support_is_refused_by_name(init):
    y = np.random.default_rng(0).uniform(0, 4.9, 30)
    with pytest.raises(
        ValueError,
        match=r"observed site 'y': expected a support that does not depend on the parameters, got Uniform whose support depends on \['theta'\]",
    ):
        mleppl.fit_mle(_uniform, y=y, init=init)


def test_data_dependent_support_still_checked():
    """A Binomial's support moves with its data total_count, not with a parameter: data
    outside it are still refused as such."""

    def binom(n, y=None):
        p = numpyro.sample("p", dist.Beta(1, 1))
        with numpyro.plate("i", n.shape[0]):
            numpyro.sample("y", dist.Binomial(n, p), obs=y)

    n = np.array([5, 5, 5, 5])
    with pytest.raises(ValueError, match="observed site 'y': expected data inside the support"):
        mleppl.fit_mle(binom, n, y=np.array([1, 2, 7, 3]))
    res = mleppl.fit_mle(binom, n, y=np.array([1, 2, 4, 3]))
    np.testing.assert_allclose(res.params["p"], 10 / 20, rtol=1e-10)


# ---- item 5: fit_many members that never start, and standard errors entry by entry ---------


def _poisson(X, y=None):
    b = numpyro.sample("b", dist.Normal(0, 1).expand([X.shape[-1]]).to_event(1))
    with numpyro.plate("n", X.shape[-2]):
        numpyro.sample("y", dist.Poisson(jnp.exp(X @ b)), obs=y)


def test_fit_many_unstarted_member_is_nan_and_se_match_single_fits():
    rng = np.random.default_rng(2)
    n = 60
    X = np.stack([np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)]) for _ in range(4)])
    X[1, :, 2] = 2.0 * X[1, :, 1]  # member 1: collinear, only b[0] is estimable
    Y = rng.poisson(np.exp(X[..., :2] @ np.array([0.5, 0.3]))).astype(float)
    Y[2, 0] = np.nan  # member 2 cannot start
    res, cats, msgs = _quiet(mleppl.fit_many, _poisson, X, y=Y, batched=("X", "y"))
    assert res.status[2] == mleppl.Status.NONFINITE_START
    assert (
        np.all(np.isnan(res.params["b"][2])) and np.all(np.isnan(res.se["b"][2])) and np.isnan(res.loglik[2])
    )
    assert any("could not start" in m and "fit 2" in m for m in msgs)
    for i in (0, 1, 3):
        one, _, _ = _quiet(res.__getitem__, i)
        np.testing.assert_array_equal(np.isnan(res.se["b"][i]), np.isnan(one.se["b"]))
        np.testing.assert_allclose(res.se["b"][i], one.se["b"], rtol=1e-8)
    assert np.isfinite(res.se["b"][1][0]) and np.all(np.isnan(res.se["b"][1][1:]))


def test_simplex_with_an_empty_category_keeps_the_interior_standard_errors():
    def cat(y=None):
        p = numpyro.param("p", jnp.ones(3) / 3, constraint=dist.constraints.simplex)
        with numpyro.plate("n", y.shape[0]):
            numpyro.sample("y", dist.Categorical(p), obs=y)

    y = np.array([0, 0, 1, 1, 1, 0, 1, 0, 1, 1])
    res, cats, _ = _quiet(mleppl.fit_mle, cat, y=y)
    assert mleppl.BoundaryWarning in cats
    np.testing.assert_allclose(res.params["p"][:2], [0.4, 0.6], atol=1e-7)
    # on the face p[2] = 0 the multinomial SE of p[0] (and of p[1] = 1 − p[0]) is sqrt(p(1−p)/n)
    np.testing.assert_allclose(res.se["p"][:2], np.sqrt(0.4 * 0.6 / 10), rtol=1e-5)
    assert np.isnan(res.se["p"][2])


# ---- item 2: covariates in large units ------------------------------------------------------


def _lm(X, y=None):
    b0 = numpyro.sample("b0", dist.Normal(0, 10))
    b = numpyro.sample("b", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    s = numpyro.sample("s", dist.HalfNormal(5))
    with numpyro.plate("n", X.shape[0]):
        numpyro.sample("y", dist.Normal(b0 + X @ b, s), obs=y)


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 2))
    return X, 1 + X @ np.array([0.5, -1.0]) + rng.normal(size=100)


@pytest.mark.parametrize("units", [1e50, 1e150])
def test_covariates_in_large_units_fit_as_in_unit_scale(linear, units):
    """The default start's 1e-3 jitter put X·b at 1e147 and the fit never recovered; the
    estimates are equivariant: b(X·c) = b(X)/c, with the same standard errors over c."""
    X, y = linear
    ref = mleppl.fit_mle(_lm, X, y=y)
    res, cats, _ = _quiet(mleppl.fit_mle, _lm, X * units, y=y)
    assert res.converged and not cats
    np.testing.assert_allclose(res.params["b"] * units, ref.params["b"], rtol=1e-9)
    np.testing.assert_allclose(res.se["b"] * units, ref.se["b"], rtol=1e-7)
    np.testing.assert_allclose(res.loglik, ref.loglik, rtol=1e-12)


def test_covariates_beyond_float64_get_one_message_naming_them(linear):
    X, y = linear
    res, cats, msgs = _quiet(mleppl.fit_mle, _lm, X * 1e300, y=y)
    assert not res.converged
    assert mleppl.IdentifiabilityWarning not in cats and mleppl.BoundaryWarning not in cats
    assert any("argument(s) 'X' (values up to" in m and "rescale" in m for m in msgs)
    with pytest.raises(ValueError, match=r"argument\(s\) 'y' \(values up to .*rescale"):
        mleppl.fit_mle(_lm, X, y=y * 1e200)


# ---- item 4: a diagnosis made where the optimizer stopped -----------------------------------


def _eckerle(x, y=None):
    b1 = numpyro.sample("b1", dist.Normal(0, 10))
    b2 = numpyro.sample("b2", dist.Normal(0, 10))
    b3 = numpyro.sample("b3", dist.Normal(0, 1000))
    s = numpyro.sample("s", dist.HalfNormal(1))
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Normal(b1 / b2 * jnp.exp(-0.5 * ((x - b3) / b2) ** 2), s), obs=y)


@pytest.mark.parametrize("init", [{"b3": 600.0}, {"b1": 1.5, "b2": 5.0, "b3": 600.0}])
def test_a_plateau_is_reported_as_where_the_optimizer_stopped(init):
    import json
    from pathlib import Path

    e = json.loads((Path(__file__).parent / "data" / "nist_strd" / "nist_strd.json").read_text())["problems"][
        "Eckerle4"
    ]
    x, y = np.asarray(e["data"]["x"]), np.asarray(e["data"]["y"])
    res, cats, msgs = _quiet(mleppl.fit_mle, _eckerle, x, y=y, init=init)
    assert not res.converged
    assert mleppl.IdentifiabilityWarning not in cats and mleppl.BoundaryWarning not in cats
    assert any(
        m.startswith("plateau: the optimizer stopped") and "b1" in m and "not shown to be an optimum" in m
        for m in msgs
    )
    assert [i.kind for i in res.issues] == ["plateau"]
    # from the published start the same model reaches the certified optimum
    good = mleppl.fit_mle(_eckerle, x, y=y, init=dict(zip(["b1", "b2", "b3"], e["start2"])))
    np.testing.assert_allclose([good.params[k] for k in ("b1", "b2", "b3")], e["certified"], rtol=1e-7)


# ---- item 3: the default single start on a multimodal likelihood ---------------------------


def test_default_start_on_a_bimodal_cauchy_is_not_silent():
    y = np.array([-1.0, 8.0, 8.5, 9.0])

    def cauchy(y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 10))
        with numpyro.plate("n", 4):
            numpyro.sample("y", dist.Cauchy(mu, 1.0), obs=y)

    res, cats, msgs = _quiet(mleppl.fit_mle, cauchy, y=y)
    ref = optimize.minimize_scalar(lambda m: -np.sum(stats.cauchy.logpdf(y, m)), bracket=(7, 8.5, 10))
    assert mleppl.MultimodalityWarning in cats and any(
        "local optimum (log-likelihood -18.0066)" in m for m in msgs
    )
    np.testing.assert_allclose(res.params["mu"], ref.x, atol=1e-6)
    np.testing.assert_allclose(res.loglik, -ref.fun, rtol=1e-10)
    # a start the user chose is kept as chosen (no probe), and n_starts stays the wide search
    local, _, _ = _quiet(mleppl.fit_mle, cauchy, y=y, init={"mu": 0.0})
    low = optimize.minimize_scalar(lambda m: -np.sum(stats.cauchy.logpdf(y, m)), bracket=(-2, -0.5, 1))
    np.testing.assert_allclose(local.loglik, -low.fun, rtol=1e-10)


# ---- item 13: a NaN Hessian where the value and gradient are finite ------------------------


def test_nan_hessian_is_named_and_the_fit_reaches_the_optimum():
    rng = np.random.default_rng(6)
    n = 1000
    x = rng.normal(size=n)
    y = np.where(rng.random(n) < 0.2, 0, rng.poisson(np.exp(0.5 + 0.5 * x))).astype(float)

    def zip_(zero):
        def model(x, y=None):
            pi = numpyro.sample("pi", dist.Beta(1, 1))
            b0 = numpyro.sample("b0", dist.Normal(0, 5))
            b1 = numpyro.sample("b1", dist.Normal(0, 5))
            with numpyro.plate("n", len(x)):
                z = numpyro.sample("z", dist.Bernoulli(pi), infer={"enumerate": "parallel"})
                numpyro.sample("y", dist.Poisson(jnp.where(z == 1, zero, jnp.exp(b0 + b1 * x))), obs=y)

        return model

    res, cats, msgs = _quiet(mleppl.fit_mle, zip_(0.0), x, y=y)
    exact = mleppl.fit_mle(zip_(1e-300), x, y=y)  # the same likelihood, an exact Hessian
    assert mleppl.PrecisionWarning in cats and mleppl.BoundaryWarning not in cats
    assert any("observed site(s) ['y'] twice gives NaN" in m for m in msgs)
    assert res.converged
    np.testing.assert_allclose(res.loglik, exact.loglik, rtol=1e-12)
    for k in ("pi", "b0", "b1"):
        np.testing.assert_allclose(res.params[k], exact.params[k], rtol=1e-6)
        np.testing.assert_allclose(res.se[k], exact.se[k], rtol=1e-5)


# ---- item 11: a dense Laplace fit larger than memory is refused before it allocates --------


def test_dense_path_refuses_a_fit_larger_than_memory(monkeypatch):
    rng = np.random.default_rng(7)
    n, A, B = 200, 10, 8
    a, b = rng.integers(0, A, n), rng.integers(0, B, n)
    y = (rng.random(n) < 0.5).astype(float)

    def crossed(a, b, y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 5))
        sa = numpyro.sample("sa", dist.HalfNormal(2))
        sb = numpyro.sample("sb", dist.HalfNormal(2))
        with numpyro.plate("A", A):
            u = numpyro.sample("u", dist.Normal(0, sa))
        with numpyro.plate("B", B):
            w = numpyro.sample("w", dist.Normal(0, sb))
        with numpyro.plate("n", n):
            # each observation touches two levels of u: no sparse structure, the dense path
            numpyro.sample("y", dist.Bernoulli(logits=mu + u[a] + 0.5 * u[(a + 1) % A] + w[b]), obs=y)

    from mleppl.model.latent import dense_memory

    need = dense_memory(A + B, n, 3)
    monkeypatch.setenv("MLEPPL_MAX_MEMORY", str(need))  # 60 % of it is what may be used
    with pytest.raises(
        MemoryError,
        match=r"random: the dense Laplace path for 18 random-effect coordinates .* over 200 observations .* needs about",
    ):
        mleppl.fit_mle(crossed, a, b, y=y, random=["u", "w"])
    from mleppl.model.latent import check_dense_memory

    monkeypatch.setenv("MLEPPL_MAX_MEMORY", str(2 * need))
    check_dense_memory(A + B, n, 3)  # within the limit: no refusal


# ---- the hostile round: categoricals, huge counts, empty groups -----------------------------


def test_a_text_categorical_is_refused_with_what_to_pass(codes):
    g, y = codes
    cat = pd.Series(pd.Categorical.from_codes(g, [f"level{k}" for k in range(10)]))
    with pytest.raises(
        TypeError,
        match=r"argument 'g': .*got dtype category \(a pandas Categorical of 10 levels.*\.cat\.codes",
    ):
        mleppl.fit_mle(_fixed_groups, cat, y=y)
    res = mleppl.fit_mle(_fixed_groups, cat.cat.codes, y=y)  # what the message says to pass
    np.testing.assert_allclose(res.params["a"], [y[g == k].mean() for k in range(10)], rtol=1e-9)
    missing = cat.copy()
    missing[4] = np.nan  # code −1
    with pytest.raises(ValueError, match=r"argument 'g'.*got values from -1"):
        mleppl.fit_mle(_fixed_groups, missing.cat.codes, y=y)


def test_counts_beyond_float64_warn():
    def pois(y=None):
        lam = numpyro.sample("lam", dist.Exponential(1.0))
        with numpyro.plate("n", len(y)):
            numpyro.sample("y", dist.Poisson(lam), obs=y)

    with pytest.warns(
        mleppl.PrecisionWarning, match=r"argument 'y': got integers up to 4.61e\+18, expected at most 2\^53"
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mleppl.ConvergenceWarning)
            mleppl.fit_mle(pois, y=np.array([2**62, 2**62 + 5], dtype=np.int64))


def test_fixed_effect_of_an_empty_group_is_not_called_a_model_ridge(codes):
    g, y = codes
    g = np.where(g == 9, 8, g)  # group 9 has no rows
    res, cats, msgs = _quiet(mleppl.fit_mle, _fixed_groups, g, y=y)
    assert mleppl.IdentifiabilityWarning not in cats
    assert any("a[9]" in m and "no observation uses" in m for m in msgs)
    means = np.array([y[g == k].mean() for k in range(9)])
    np.testing.assert_allclose(res.params["a"][:9], means, rtol=1e-9)
    assert np.isnan(res.se["a"][9]) and np.all(np.isfinite(res.se["a"][:9]))


# ---- item 14: many fixed effects with a diagonal Hessian ------------------------------------


def test_diagonal_information_is_inverted_without_an_eigendecomposition():
    """Separate intercepts per group give an exactly diagonal Hessian: its inverse is read
    off (the eigen-decompositions of 2,100² cost seconds per fit), equal to the general path."""
    from mleppl.uncertainty.information import invert_information

    rng = np.random.default_rng(0)
    d = rng.uniform(0.5, 50.0, 40)
    fast = invert_information(np.diag(d))
    np.testing.assert_allclose(np.diag(fast.cov), 1 / d, rtol=1e-14)
    assert fast.positive_definite and fast.estimable.all()
    d[3] = 0.0  # a coordinate the likelihood ignores
    sing = invert_information(np.diag(d))
    assert not sing.positive_definite and not sing.estimable[3] and sing.estimable[[0, 1, 2, 4]].all()
    np.testing.assert_allclose(np.diag(sing.cov)[[0, 1, 2]], 1 / d[[0, 1, 2]], rtol=1e-14)
