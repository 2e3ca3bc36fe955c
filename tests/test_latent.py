"""Latent variables: random effects integrated out (Laplace, adaptive Gauss–Hermite) and discrete
latent sites summed out by enumeration, against independent references.

- Gaussian mixed models vs statsmodels ``MixedLM(reml=False)`` (random intercept; correlated
  random intercept and slope);
- binomial and Poisson GLMMs vs an independent per-group quadrature written here with scipy;
- a mixture with an explicit ``Categorical`` label vs the same model with ``MixtureSameFamily``;
- an HMM vs a NumPy forward algorithm, its smoothing marginals vs NumPy forward–backward.
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest
from conftest import assert_rel
from numpyro.contrib.funsor import markov

import mleppl
from mleppl import fit_mle

G, M = 25, 8
RNG = np.random.default_rng(11)
GROUP = np.repeat(np.arange(G), M)
X = RNG.normal(size=G * M)
U = RNG.normal(0, 0.8, G)
SLOPE = RNG.normal(0, 0.4, G)
Y_LMM = 1.0 + 0.5 * X + U[GROUP] + SLOPE[GROUP] * X + RNG.normal(0, 1.0, G * M)
Y_BIN = (RNG.uniform(size=G * M) < 1 / (1 + np.exp(-(-0.3 + 0.8 * X + U[GROUP])))).astype(float)
Y_POIS = RNG.poisson(np.exp(0.2 + 0.4 * X + 0.6 * U[GROUP])).astype(float)


def random_intercept(x, g, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
    sigma_u = numpyro.sample("sigma_u", dist.HalfNormal(2))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2))
    with numpyro.plate("group", G):
        u = numpyro.sample("u", dist.Normal(0, sigma_u))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Normal(b[0] + b[1] * x + u[g], sigma), obs=y)


def random_slope(x, g, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
    tau = numpyro.sample("tau", dist.HalfNormal(2).expand([2]).to_event(1))
    corr = numpyro.sample("L", dist.LKJCholesky(2))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2))
    with numpyro.plate("group", G):
        u = numpyro.sample("u", dist.MultivariateNormal(jnp.zeros(2), scale_tril=tau[:, None] * corr))
    with numpyro.plate("obs", x.shape[0]):
        mean = b[0] + u[g, 0] + (b[1] + u[g, 1]) * x
        numpyro.sample("y", dist.Normal(mean, sigma), obs=y)


def logit_glmm(x, g, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
    sigma_u = numpyro.sample("sigma_u", dist.HalfNormal(2))
    with numpyro.plate("group", G):
        u = numpyro.sample("u", dist.Normal(0, sigma_u))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=b[0] + b[1] * x + u[g]), obs=y)


def poisson_glmm(x, g, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
    sigma_u = numpyro.sample("sigma_u", dist.HalfNormal(2))
    with numpyro.plate("group", G):
        u = numpyro.sample("u", dist.Normal(0, sigma_u))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Poisson(jnp.exp(b[0] + b[1] * x + u[g])), obs=y)


@pytest.fixture(scope="module")
def lmm_fit():
    return fit_mle(random_intercept, X, GROUP, y=Y_LMM, random=["u"])


def _mixedlm(re_formula=None):
    sm = pytest.importorskip("statsmodels.formula.api")
    df = pd.DataFrame({"y": Y_LMM, "x": X, "g": GROUP})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sm.mixedlm("y ~ x", df, groups=df["g"], re_formula=re_formula).fit(reml=False)


def test_random_intercept_matches_statsmodels_mixedlm(lmm_fit):
    res, ref = lmm_fit, _mixedlm()
    assert res.converged and res.n_params == 4
    # the Laplace approximation is exact for a Gaussian model: the marginal log-likelihood is
    assert_rel(res.loglik, ref.llf, 1e-9, "log-likelihood")
    assert_rel(res.params["b"], ref.fe_params.values, 1e-6, "fixed effects")
    assert_rel(res.params["sigma_u"] ** 2, ref.cov_re.values[0, 0], 1e-5, "variance component")
    assert_rel(res.params["sigma"] ** 2, ref.scale, 1e-6, "residual variance")
    assert_rel(res.se["b"], ref.bse_fe.values, 1e-5, "fixed-effect standard errors")


def test_random_effects_are_the_conditional_modes_and_sds(lmm_fit):
    res = lmm_fit
    re = res.random_effects["u"]
    assert list(re.columns) == ["mode", "sd"] and len(re) == G
    su2, s2 = float(res.params["sigma_u"]) ** 2, float(res.params["sigma"]) ** 2
    b = res.params["b"]
    resid = Y_LMM - b[0] - b[1] * X
    # closed form (BLUP): shrunken group mean, conditional variance 1/(n/σ² + 1/σ_u²)
    prec = M / s2 + 1 / su2
    mode = np.array([resid[GROUP == j].sum() / s2 for j in range(G)]) / prec
    assert_rel(re["mode"].to_numpy(), mode, 1e-8, "conditional modes")
    assert_rel(re["sd"].to_numpy(), np.full(G, np.sqrt(1 / prec)), 1e-8, "conditional sds")


@pytest.mark.slow
def test_correlated_random_slope_matches_statsmodels():
    res = fit_mle(random_slope, X, GROUP, y=Y_LMM, random=["u"])
    ref = _mixedlm("~x")
    assert res.converged
    assert_rel(res.loglik, ref.llf, 1e-8, "log-likelihood")
    assert_rel(res.params["b"], ref.fe_params.values, 1e-5, "fixed effects")
    tril = np.asarray(res.params["tau"])[:, None] * np.asarray(res.params["L"])
    assert_rel(tril @ tril.T, ref.cov_re.values, 1e-4, "random-effects covariance")


def _quadrature_loglik(kind, b0, b1, su):
    """Marginal log-likelihood by scipy.integrate.quad per group (independent of mleppl)."""
    from scipy import integrate, special, stats

    total = 0.0
    for j in range(G):
        xs = X[GROUP == j]
        ys = (Y_BIN if kind == "binomial" else Y_POIS)[GROUP == j]

        def integrand(u, xs=xs, ys=ys):
            eta = b0 + b1 * xs + u
            if kind == "binomial":
                ll = np.sum(ys * eta - np.logaddexp(0, eta))
            else:
                ll = np.sum(ys * eta - np.exp(eta) - special.gammaln(ys + 1))
            return np.exp(ll + stats.norm.logpdf(u, 0, su))

        val, _ = integrate.quad(integrand, -12 * su, 12 * su, epsabs=0, epsrel=1e-12, limit=200)
        total += np.log(val)
    return total


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, model, y", [("binomial", logit_glmm, Y_BIN), ("poisson", poisson_glmm, Y_POIS)]
)
def test_glmm_adaptive_quadrature_matches_independent_quadrature(kind, model, y):
    res = fit_mle(model, X, GROUP, y=y, random=["u"], nagq=15)
    assert res.converged
    b, su = res.params["b"], float(res.params["sigma_u"])
    # the marginal log-likelihood at the estimate, integrated independently
    assert_rel(res.loglik, _quadrature_loglik(kind, b[0], b[1], su), 1e-8, "AGQ log-likelihood")
    # and the estimate is its maximum: central differences of the independent integral vanish
    h = 1e-4
    for k, theta in enumerate([b[0], b[1], su]):
        up, dn = [b[0], b[1], su], [b[0], b[1], su]
        up[k], dn[k] = theta + h, theta - h
        slope = (_quadrature_loglik(kind, *up) - _quadrature_loglik(kind, *dn)) / (2 * h)
        assert abs(slope) < 1e-4, f"score component {k} of the independent integral: {slope}"


@pytest.mark.slow
def test_laplace_and_quadrature_agree_to_their_approximation_error():
    lap = fit_mle(logit_glmm, X, GROUP, y=Y_BIN, random=["u"])
    agq = fit_mle(logit_glmm, X, GROUP, y=Y_BIN, random=["u"], nagq=15)
    # Laplace is an O(1/n_g) approximation for binary data: close, not equal
    assert abs(lap.loglik - agq.loglik) < 0.5 and lap.loglik != agq.loglik
    assert np.allclose(lap.estimate, agq.estimate, atol=0.05)


@pytest.mark.slow
def test_random_effect_fitted_as_a_parameter_warns():
    with pytest.warns(mleppl.MLEWarning) as record:
        fit_mle(random_intercept, X, GROUP, y=Y_LMM, max_steps=3)
    assert any(
        issubclass(w.category, mleppl.LatentVariableWarning) and "random=['u']" in str(w.message)
        for w in record
    )


def four_effects(x, g, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10))
    tau = numpyro.sample("tau", dist.HalfNormal(2))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2))
    with numpyro.plate("group", G):
        u = numpyro.sample("u", dist.Normal(0, tau).expand([4]).to_event(1))
    with numpyro.plate("obs", x.shape[0]):
        mean = b + u[g, 0] + u[g, 1] * x + u[g, 2] * x**2 + u[g, 3] * x**3
        numpyro.sample("y", dist.Normal(mean, sigma), obs=y)


def test_nagq_refused_where_it_does_not_apply():
    # vector quadrature covers up to three effects per group (tests/test_agq_vector.py)
    with pytest.raises(ValueError, match=r"at most 3 coordinates per group .*\(4 per group\)"):
        fit_mle(four_effects, X, GROUP, y=Y_LMM, random=["u"], nagq=5)
    with pytest.raises(ValueError, match="expected names of latent continuous sample sites"):
        fit_mle(random_intercept, X, GROUP, y=Y_LMM, random=["v"])


@pytest.mark.slow
def test_lrt_for_a_variance_component_uses_the_boundary_mixture(lmm_fit):
    def fixed_only(x, g, y=None):
        b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
        sigma = numpyro.sample("sigma", dist.HalfNormal(2))
        with numpyro.plate("obs", x.shape[0]):
            numpyro.sample("y", dist.Normal(b[0] + b[1] * x, sigma), obs=y)

    small = fit_mle(fixed_only, X, GROUP, y=Y_LMM)
    t = mleppl.lrt(small, lmm_fit)
    assert t.df == 1 and t.reference == "0.5 chi2(0) + 0.5 chi2(1)"
    from mleppl.core.stats import chi2_sf

    assert_rel(t.p_value, 0.5 * chi2_sf(t.statistic, 1), 1e-12, "half the χ²(1) tail")


# --------------------------------------------------------------------------- discrete latents
Y_MIX = np.r_[RNG.normal(-2, 1, 40), RNG.normal(3, 1.5, 60)]


def mixture_labels(y=None):
    w = numpyro.sample("w", dist.Dirichlet(jnp.ones(2)))
    mu = numpyro.sample("mu", dist.Normal(0, 10).expand([2]).to_event(1))
    s = numpyro.sample("s", dist.HalfNormal(2).expand([2]).to_event(1))
    with numpyro.plate("n", y.shape[0]):
        z = numpyro.sample("z", dist.Categorical(w))
        numpyro.sample("y", dist.Normal(mu[z], s[z]), obs=y)


def mixture_marginal(y=None):
    w = numpyro.sample("w", dist.Dirichlet(jnp.ones(2)))
    mu = numpyro.sample("mu", dist.Normal(0, 10).expand([2]).to_event(1))
    s = numpyro.sample("s", dist.HalfNormal(2).expand([2]).to_event(1))
    with numpyro.plate("n", y.shape[0]):
        numpyro.sample("y", dist.MixtureSameFamily(dist.Categorical(w), dist.Normal(mu, s)), obs=y)


def test_explicit_label_mixture_equals_mixture_same_family():
    init = {"mu": np.array([-1.0, 1.0])}
    a = fit_mle(mixture_labels, Y_MIX, init=init)
    b = fit_mle(mixture_marginal, Y_MIX, init=init)
    assert a.converged and b.converged
    assert_rel(a.loglik, b.loglik, 1e-12, "log-likelihood")
    assert_rel(a.estimate, b.estimate, 1e-9, "estimates")
    assert_rel(a.bse, b.bse, 1e-8, "standard errors")
    # responsibilities: closed form at the estimate
    w, mu, s = (np.asarray(a.params[k]) for k in ("w", "mu", "s"))
    dens = w * np.exp(-0.5 * ((Y_MIX[:, None] - mu) / s) ** 2) / s
    assert_rel(a.latent_probabilities()["z"], dens / dens.sum(1, keepdims=True), 1e-10, "responsibilities")
    # predictive checks work on the marginal fit (labels drawn, then data)
    draws = a.predictive(0, num_samples=5)
    assert draws["y"].shape == (5, len(Y_MIX))
    # labels summed out jointly have no per-unit terms: sandwich and resampling refused by name
    with pytest.raises(ValueError, match="discrete latent site"):
        a.with_cov("hc0")
    with pytest.raises(ValueError, match="discrete latent site"):
        mleppl.bootstrap(a, 10)


T, K = 60, 2
TRANS = np.array([[0.9, 0.1], [0.2, 0.8]])
STATES = [0]
for _ in range(T - 1):
    STATES.append(RNG.choice(K, p=TRANS[STATES[-1]]))
Y_HMM = np.array([-1.0, 1.5])[STATES] + RNG.normal(0, 0.7, T)


def hmm(y=None):
    p = numpyro.sample("p", dist.Dirichlet(jnp.ones((K, K))).to_event(1))
    mu = numpyro.sample("mu", dist.Normal(0, 5).expand([K]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2))
    x = 0
    for t in markov(range(len(y))):
        x = numpyro.sample(f"x_{t}", dist.Categorical(p[x]))
        numpyro.sample(f"y_{t}", dist.Normal(mu[x], sigma), obs=y[t])


def _forward_backward(p, mu, sigma, y):
    emit = np.exp(-0.5 * ((y[:, None] - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    alpha = np.zeros((len(y), K))
    c = np.zeros(len(y))
    a = p[0] * emit[0]  # the chain starts from state 0
    for t in range(len(y)):
        if t:
            a = (alpha[t - 1] @ p) * emit[t]
        c[t] = a.sum()
        alpha[t] = a / c[t]
    beta = np.ones((len(y), K))
    for t in range(len(y) - 2, -1, -1):
        beta[t] = p @ (emit[t + 1] * beta[t + 1]) / c[t + 1]
    return np.sum(np.log(c)), alpha * beta


def hmm_scan(y=None):
    from numpyro.contrib.control_flow import scan

    p = numpyro.sample("p", dist.Dirichlet(jnp.ones((K, K))).to_event(1))
    mu = numpyro.sample("mu", dist.Normal(0, 5).expand([K]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2))

    def step(x, y_t):
        x = numpyro.sample("x", dist.Categorical(p[x]))
        numpyro.sample("y", dist.Normal(mu[x], sigma), obs=y_t)
        return x, None

    scan(step, 0, y)


def _markov_marginals(probs):
    return np.stack([probs[f"x_{t}"] for t in range(T)])  # one site per step


def _scan_marginals(probs):
    return probs["x"]  # one site over the chain: (T, K)


@pytest.mark.slow
@pytest.mark.parametrize("model, marginals", [(hmm, _markov_marginals), (hmm_scan, _scan_marginals)])
def test_hmm_matches_the_forward_algorithm_and_its_smoothing_marginals(model, marginals):
    res = fit_mle(model, Y_HMM, init={"mu": np.array([-0.5, 0.5])})
    assert res.converged
    p, mu, sigma = (np.asarray(res.params[k]) for k in ("p", "mu", "sigma"))
    loglik, smooth = _forward_backward(p, mu, float(sigma), Y_HMM)
    assert_rel(res.loglik, loglik, 1e-10, "HMM log-likelihood")
    got = marginals(res.latent_probabilities())
    assert got.shape == (T, K)
    assert_rel(got, smooth, 1e-8, "smoothing marginals")


@pytest.mark.slow
def test_parametric_bootstrap_of_a_marginal_fit(lmm_fit):
    boot = mleppl.bootstrap(lmm_fit, 40, kind="parametric", rng_key=2)
    assert boot.n_failed == 0 and boot.draws["sigma_u"].shape == (40,)
    # the bootstrap spread of the fixed effects agrees with the observed-information SEs
    # within the Monte-Carlo error of a 40-draw SD (relative se ≈ 1/√(2·39) ≈ 0.11, 3.5 se)
    assert np.all(np.abs(boot.se()[:2] / lmm_fit.bse[:2] - 1) < 0.4)


# --------------------------------------------------------------------------- groups as units
def _closed_form_group_loglik(theta):
    """log L_g of the Gaussian random-intercept model in closed form: y_g ~ N(Xb, σ_u²11ᵀ + σ²I)."""
    import jax
    import jax.numpy as jnp

    b0, b1, su, s = theta[0], theta[1], theta[2], theta[3]
    out = []
    for j in range(G):
        idx = GROUP == j
        cov = su**2 * jnp.ones((M, M)) + s**2 * jnp.eye(M)
        out.append(jax.scipy.stats.multivariate_normal.logpdf(Y_LMM[idx], b0 + b1 * X[idx], cov))
    return jnp.stack(out)


@pytest.mark.slow
def test_group_level_sandwich_matches_closed_form(lmm_fit):
    import jax

    res = lmm_fit
    order = [res.param_names.index(n) for n in ("b[0]", "b[1]", "sigma_u", "sigma")]
    theta = np.asarray(res.estimate)[order]
    with jax.enable_x64(True):
        assert_rel(float(np.sum(_closed_form_group_loglik(theta))), res.loglik, 1e-12, "Σ_g log L_g")
        s = np.asarray(jax.jacfwd(_closed_form_group_loglik)(theta))  # (G, 4) group scores
        h = -np.asarray(jax.hessian(lambda t: _closed_form_group_loglik(t).sum())(theta))
    hinv = np.linalg.inv(h)
    ref = hinv @ (s.T @ s) @ hinv  # the sandwich is invariant to the parametrization
    hc0 = res.with_cov("hc0")
    # two automatic-differentiation computations of the same quantities (the Laplace
    # approximation is exact here): roundoff, amplified by H⁻¹ on both sides (measured 1e-15)
    assert_rel(np.asarray(hc0.cov)[np.ix_(order, order)], ref, 1e-8, "group-level HC0 (CR0)")
    cl = res.with_cov("cluster")  # default clusters: the random-effect groups
    assert_rel(np.asarray(cl.cov)[np.ix_(order, order)], ref * G / (G - 4), 1e-8, "cluster = CR0·G/(G−p)")
    # coarser clusters: pairs of groups
    pairs = np.arange(G) // 2
    sp = np.zeros((pairs.max() + 1, 4))
    np.add.at(sp, pairs, s)
    n_cl = pairs.max() + 1
    ref2 = hinv @ (sp.T @ sp) @ hinv * n_cl / (n_cl - 1) * (G - 1) / (G - 4)
    assert_rel(
        np.asarray(res.with_cov("cluster", groups=pairs).cov)[np.ix_(order, order)], ref2, 1e-8, "pairs"
    )
    with pytest.raises(ValueError, match="one per random-effect group"):
        res.with_cov("cluster", groups=GROUP)


@pytest.mark.slow
def test_cluster_bootstrap_refit_equals_a_fit_to_the_resampled_groups(lmm_fit):
    import jax
    import jax.numpy as jnp

    from mleppl.model.units import unit_problem
    from mleppl.uncertainty.bootstrap import chord_program
    from mleppl.uncertainty.robust import scores

    res = lmm_fit
    counts = np.random.default_rng(5).multinomial(G, np.full(G, 1 / G)).astype(float)
    with jax.enable_x64(True):  # internals below the float64 entry points
        pr = unit_problem(res.problem, res.z)
        g0 = -(counts @ scores(pr, res.z))
        chol = np.linalg.cholesky(np.asarray(res.hessian))
        z, ok = chord_program(pr, "nonparametric")(
            jnp.asarray(counts[None]), jnp.asarray(g0[None]), jnp.asarray(res.z), jnp.asarray(chol), pr.data
        )
        theta = np.asarray(pr.layout.theta(z[0]))
    assert bool(ok[0])
    # the same groups written out: group j repeated counts[j] times, each copy its own group
    rows = [np.flatnonzero(GROUP == j) for j in range(G) for _ in range(int(counts[j]))]
    idx = np.concatenate(rows)
    new_g = np.repeat(np.arange(len(rows)), M)
    direct = fit_mle(random_intercept, X[idx], new_g, y=Y_LMM[idx], random=["u"])
    # coarse check first (a wrong weighting moves estimates by O(0.1) SE), then the exact bound
    assert_rel(theta, direct.estimate, 1e-4, "cluster-bootstrap refit")
    # the chord refit stops at ½ gᵀH⁻¹g ≤ 1e-10: within ≈ √(2e-10) ≈ 1.4e-5 in the H metric
    dz = np.asarray(z[0]) - np.asarray(direct.z)
    assert float(np.sqrt(dz @ np.asarray(direct.hessian) @ dz)) < 3e-5
    boot = mleppl.bootstrap(res, 100, rng_key=3)  # nonparametric: whole groups resampled
    assert boot.n_failed == 0
    # the cluster bootstrap SD estimates the group-level sandwich SE: 100 draws give a relative
    # Monte-Carlo error of about 1/√198 ≈ 0.07; allow 4 of them
    assert np.all(np.abs(boot.se()[:2] / res.with_cov("hc0").bse[:2] - 1) < 0.3)


def test_group_level_and_population_predictions(lmm_fit):
    res = lmm_fit
    b = np.asarray(res.params["b"])
    mode = res.random_effects["u"]["mode"].to_numpy()
    su, s = float(res.params["sigma_u"]), float(res.params["sigma"])
    n = 4000
    grp = res.predictive(0, X[:5], GROUP[:5], num_samples=n, level="group")["y"]
    pop = res.predictive(1, X[:5], GROUP[:5], num_samples=n)["y"]
    # group level: y ~ N(Xb + û_g, σ²); population: y ~ N(Xb, σ_u² + σ²). 5 MC standard errors
    assert np.all(np.abs(grp.mean(0) - (b[0] + b[1] * X[:5] + mode[GROUP[:5]])) < 5 * s / np.sqrt(n))
    assert np.all(np.abs(pop.mean(0) - (b[0] + b[1] * X[:5])) < 5 * np.hypot(su, s) / np.sqrt(n))
    rel_sd = 5 / np.sqrt(2 * n)
    assert np.all(np.abs(grp.std(0) / s - 1) < rel_sd) and np.all(
        np.abs(pop.std(0) / np.hypot(su, s) - 1) < rel_sd
    )
    refit = res.predictive(2, num_samples=n, level="group")["y"]  # at the fitted data
    assert np.all(np.abs(refit.mean(0)[:5] - (b[0] + b[1] * X[:5] + mode[GROUP[:5]])) < 5 * s / np.sqrt(n))
    with pytest.raises(ValueError, match="level: expected"):
        res.predictive(0, level="groups")


@pytest.mark.slow
def test_crossed_random_effects_match_the_closed_form_likelihood():
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(21)
    na, nb = 8, 6
    ia, ib = np.repeat(np.arange(na), nb * 2), np.tile(np.repeat(np.arange(nb), 2), na)
    yc = 2.0 + rng.normal(0, 0.9, na)[ia] + rng.normal(0, 0.6, nb)[ib] + rng.normal(0, 0.5, ia.size)

    def crossed(ia, ib, y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 10))
        sa = numpyro.sample("sa", dist.HalfNormal(2))
        sb = numpyro.sample("sb", dist.HalfNormal(2))
        s = numpyro.sample("s", dist.HalfNormal(2))
        with numpyro.plate("A", na):
            a = numpyro.sample("a", dist.Normal(0, sa))
        with numpyro.plate("B", nb):
            bb = numpyro.sample("bb", dist.Normal(0, sb))
        with numpyro.plate("obs", ia.size):
            numpyro.sample("y", dist.Normal(mu + a[ia] + bb[ib], s), obs=y)

    res = fit_mle(crossed, ia, ib, y=yc, random=["a", "bb"])
    za, zb = np.eye(na)[ia], np.eye(nb)[ib]

    def ll(t):
        cov = t[1] ** 2 * za @ za.T + t[2] ** 2 * zb @ zb.T + t[3] ** 2 * jnp.eye(ia.size)
        return jax.scipy.stats.multivariate_normal.logpdf(yc, t[0] * jnp.ones(ia.size), cov)

    theta = np.array([float(res.params[k]) for k in ("mu", "sa", "sb", "s")])
    assert res.converged
    # the fit stops at λ²/2 ≤ 1e-12: log-likelihood within 1e-12 of its maximum, estimates within
    # ~1e-6 SE, so the closed form's gradient there is ~1e-6 and SEs agree to ~1e-6
    with jax.enable_x64(True):
        assert_rel(res.loglik, float(ll(theta)), 1e-10, "marginal log-likelihood (exact for a Gaussian)")
        assert np.max(np.abs(np.asarray(jax.grad(ll)(theta)))) < 1e-6  # the closed form's maximum
        h = -np.asarray(jax.hessian(ll)(theta))
    assert_rel(np.sqrt(np.diag(np.linalg.inv(h))), res.bse, 1e-6, "standard errors")
    with pytest.raises(ValueError, match="crossed random effects"):
        res.with_cov("hc0")
    with pytest.raises(ValueError, match="crossed random effects"):
        mleppl.bootstrap(res, 10)


@pytest.mark.slow
def test_compare_a_hierarchical_model_with_nuts(lmm_fit):
    dt = mleppl.fit_nuts(
        random_intercept, X, GROUP, y=Y_LMM, num_warmup=300, num_samples=300, progress_bar=False, rng_key=0
    )
    table = mleppl.compare(lmm_fit, dt)
    # fixed effects and variance components side by side, then each group's effect: conditional
    # mode and SD beside its posterior
    assert list(table.index[:4]) == ["b[0]", "b[1]", "sigma_u", "sigma"]
    assert {f"u[{j}]" for j in range(G)} <= set(table.index)
    re = lmm_fit.random_effects["u"]
    assert_rel(table.loc["u[3]", "mle"], re["mode"].iloc[3], 1e-12, "mode")
    assert_rel(table.loc["u[3]", "se"], re["sd"].iloc[3], 1e-12, "conditional sd")
    # weak priors on 25 groups: fixed and group effects agree within compare's own flag threshold
    # (STD_DIFF_TOL = 0.25 SE)
    assert np.all(np.abs(table.loc[["b[0]", "b[1]"], "std_diff"]) < 0.25)
    assert np.median(np.abs(table.loc[[f"u[{j}]" for j in range(G)], "std_diff"])) < 0.25


@pytest.mark.slow
def test_profile_interval_of_a_variance_component(lmm_fit):
    ci = lmm_fit.conf_int(method="profile")
    lo, hi = ci.loc["sigma_u"]
    assert 0 < lo < float(lmm_fit.params["sigma_u"]) < hi
