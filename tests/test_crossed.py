"""Crossed, nested and partially crossed random effects: the sparse Laplace path (issue 22).

Three checks for each design: the sparse structure equals the dense inner Hessian on small
data (objective, gradient, outer Hessian, conditional modes and SDs to 1e-10), its
derivatives equal finite differences, and its fits equal lme4 / glmmTMB (values stored in
``tests/data/r_crossed_references.json`` with the R calls and versions; see
``tests/data/make_r_crossed_references.R``).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest
from conftest import assert_rel

import mleppl
from mleppl import fit_mle
from mleppl.model import latent
from mleppl.model.structure import BlockDiagonal, Dense, Sparse

REF = json.loads((Path(__file__).parent / "data" / "r_crossed_references.json").read_text())["cases"]
DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data"


def _case(name):
    d = REF[name]["data"]
    return {k: np.asarray(v) for k, v in d.items() if isinstance(v, list)}


def crossed_lmm(x, a, b, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([2]).to_event(1))
    sa = numpyro.sample("sd_a", dist.HalfNormal(2))
    sb = numpyro.sample("sd_b", dist.HalfNormal(2))
    s = numpyro.sample("sigma", dist.HalfNormal(2))
    with numpyro.plate("A", 30):
        ua = numpyro.sample("u_a", dist.Normal(0, sa))
    with numpyro.plate("B", 20):
        ub = numpyro.sample("u_b", dist.Normal(0, sb))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Normal(beta[0] + beta[1] * x + ua[a] + ub[b], s), obs=y)


def nested_lmm(x, school, cls, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([2]).to_event(1))
    s1 = numpyro.sample("sd_school", dist.HalfNormal(2))
    s2 = numpyro.sample("sd_class", dist.HalfNormal(2))
    s = numpyro.sample("sigma", dist.HalfNormal(2))
    with numpyro.plate("school", 40):
        us = numpyro.sample("u_school", dist.Normal(0, s1))
    with numpyro.plate("class", 160):
        uc = numpyro.sample("u_class", dist.Normal(0, s2))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Normal(beta[0] + beta[1] * x + us[school] + uc[cls], s), obs=y)


def partial_glmm(x, a, b, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([2]).to_event(1))
    sa = numpyro.sample("sd_a", dist.HalfNormal(2))
    sb = numpyro.sample("sd_b", dist.HalfNormal(2))
    with numpyro.plate("A", 60):
        ua = numpyro.sample("u_a", dist.Normal(0, sa))
    with numpyro.plate("B", 40):
        ub = numpyro.sample("u_b", dist.Normal(0, sb))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=beta[0] + beta[1] * x + ua[a] + ub[b]), obs=y)


@pytest.fixture(scope="module")
def crossed_fit():
    d = _case("crossed_lmm")
    return fit_mle(crossed_lmm, d["x"], d["a"], d["b"], y=d["y"], random=["u_a", "u_b"])


@pytest.fixture(scope="module")
def nested_fit():
    d = _case("nested_lmm")
    return fit_mle(nested_lmm, d["x"], d["school"], d["class"], y=d["y"], random=["u_school", "u_class"])


@pytest.fixture(scope="module")
def partial_fit():
    d = _case("partial_glmm")
    return fit_mle(partial_glmm, d["x"], d["a"], d["b"], y=d["y"].astype(float), random=["u_a", "u_b"])


def _dense(problem):
    spec = problem.random
    return problem._replace(random=spec._replace(structure=Dense(spec.size)))


def _objective(problem):
    def nll(z):
        return problem.negloglik(z, problem.data)

    return jax.jit(nll), jax.jit(jax.grad(nll)), jax.jit(jax.hessian(nll))


def _conditional(problem, z):
    return jax.jit(lambda zz: latent.conditional(problem, zz, problem.data))(z)


# the crossed case in the fast suite; nested and partially crossed (14 s each) in the slow one
@pytest.mark.parametrize(
    "fit",
    [
        "crossed_fit",
        pytest.param("nested_fit", marks=pytest.mark.slow),
        pytest.param("partial_fit", marks=pytest.mark.slow),
    ],
)
def test_sparse_structure_equals_the_dense_inner_hessian(fit, request):
    res = request.getfixturevalue(fit)
    pr = res.problem
    assert isinstance(pr.random.structure, Sparse)
    dense = _dense(pr)
    z = jnp.asarray(res.z)
    with jax.enable_x64(True):
        for point in (z, z + 0.05 * jnp.sin(jnp.arange(z.size) + 1.0)):
            for f_sparse, f_dense, what in zip(
                _objective(pr), _objective(dense), ("value", "gradient", "hessian")
            ):
                a, b = np.asarray(f_sparse(point)), np.asarray(f_dense(point))
                scale = np.max(np.abs(b)) + 1.0
                assert np.max(np.abs(a - b)) < 1e-10 * scale, what
            (ta, sa, *_), (tb, sb, *_) = _conditional(pr, point), _conditional(dense, point)
            assert np.max(np.abs(np.asarray(ta) - np.asarray(tb))) < 1e-10
            assert np.max(np.abs(np.asarray(sa) / np.asarray(sb) - 1)) < 1e-10


def test_sparse_laplace_derivatives_equal_finite_differences(partial_fit):
    pr = partial_fit.problem
    nll, grad, hess = _objective(pr)
    z = jnp.asarray(partial_fit.z) + 0.1
    h = 1e-5
    with jax.enable_x64(True):
        g, hh = np.asarray(grad(z)), np.asarray(hess(z))
        eye = np.eye(z.size)
        fd_g = np.array([(float(nll(z + h * e)) - float(nll(z - h * e))) / (2 * h) for e in eye])
        fd_h = np.stack([(np.asarray(grad(z + h * e)) - np.asarray(grad(z - h * e))) / (2 * h) for e in eye])
    # central differences: truncation O(h²·f''') ~ 1e-8 and roundoff ~ 1e-16·|f|/h ~ 1e-8
    assert np.max(np.abs(fd_g - g)) < 1e-6 * (1 + np.max(np.abs(g)))
    assert np.max(np.abs(fd_h - hh)) < 1e-6 * (1 + np.max(np.abs(hh)))


def test_structures_are_chosen_from_the_model(crossed_fit, nested_fit, partial_fit):
    assert crossed_fit.problem.random.structure.kind == "sparse (A, B)"
    assert partial_fit.problem.random.structure.kind == "sparse (A, B)"
    # classes within schools: the school block of the Schur complement is block-diagonal
    st = nested_fit.problem.random.structure
    assert st.kind == "sparse (class, school), nested" and st.rest_block == 1
    assert not crossed_fit.problem.random.structure.rest_block
    # the sparse entries are per row: such data are not padded to row buckets
    assert crossed_fit.problem.rows == ()


def _ref(case, tool):
    return REF[case]["fits"][tool]


def test_crossed_lmm_equals_lme4_and_glmmtmb(crossed_fit):
    res = crossed_fit
    lmer, tmb = _ref("crossed_lmm", "lmer"), _ref("crossed_lmm", "glmmTMB")
    assert res.converged
    # an LMM's Laplace approximation is exact: the same ML optimum (lmer's optimizer stops within
    # ~1e-9 relative in log-likelihood of it; mleppl's Newton at λ²/2 ≤ 1e-12)
    assert_rel(res.loglik, lmer["loglik"], 1e-9, "log-likelihood vs lmer")
    assert res.loglik >= lmer["loglik"] - 1e-9
    beta = np.asarray(res.params["beta"])
    assert_rel(beta, [lmer["fixef"]["(Intercept)"], lmer["fixef"]["x"]], 1e-5, "fixed effects")
    assert_rel(float(res.params["sd_a"]), lmer["re_sd"]["a"], 1e-4, "SD a")
    assert_rel(float(res.params["sd_b"]), lmer["re_sd"]["b"], 1e-4, "SD b")
    assert_rel(float(res.params["sigma"]), lmer["sigma"], 1e-5, "sigma")
    # observed-information SEs in all parameters: glmmTMB's sdreport (its optimizer stops ~1e-5 off)
    assert_rel(np.asarray(res.bse)[:2], [tmb["se"]["(Intercept)"], tmb["se"]["x"]], 1e-4, "SEs vs glmmTMB")
    # conditional modes and SDs: lme4's ranef(condVar = TRUE) at (almost) the same estimate
    for site, key in (("u_a", "a"), ("u_b", "b")):
        ref = lmer["ranef"][key]
        assert np.max(np.abs(res.random_effects[site]["mode"].to_numpy() - np.asarray(ref["mode"]))) < 1e-4
        assert_rel(
            res.random_effects[site]["sd"].to_numpy(), np.asarray(ref["condsd"]), 1e-4, f"condVar {key}"
        )


def test_nested_lmm_equals_lme4(nested_fit):
    res = nested_fit
    lmer, tmb = _ref("nested_lmm", "lmer"), _ref("nested_lmm", "glmmTMB")
    assert res.converged
    assert_rel(res.loglik, lmer["loglik"], 1e-9, "log-likelihood vs lmer")
    assert_rel(
        np.asarray(res.params["beta"]), [lmer["fixef"]["(Intercept)"], lmer["fixef"]["x"]], 1e-5, "beta"
    )
    assert_rel(float(res.params["sd_school"]), lmer["re_sd"]["school"], 1e-4, "SD school")
    assert_rel(float(res.params["sd_class"]), lmer["re_sd"]["class:school"], 1e-4, "SD class")
    assert_rel(np.asarray(res.bse)[:2], [tmb["se"]["(Intercept)"], tmb["se"]["x"]], 2e-4, "SEs vs glmmTMB")
    for site, key in (("u_school", "school"), ("u_class", "class:school")):
        ref = lmer["ranef"][key]
        mode = res.random_effects[site]["mode"].to_numpy()[np.asarray(ref["id"])]
        assert np.max(np.abs(mode - np.asarray(ref["mode"]))) < 1e-4


def test_partially_crossed_glmm_equals_glmmtmb(partial_fit):
    res = partial_fit
    tmb = _ref("partial_glmm", "glmmTMB")
    assert res.converged
    # the same Laplace approximation: glmmTMB's optimum to its optimizer's tolerance
    assert_rel(res.loglik, tmb["loglik"], 1e-8, "log-likelihood vs glmmTMB")
    assert res.loglik >= tmb["loglik"] - 1e-8
    assert_rel(np.asarray(res.params["beta"]), [tmb["fixef"]["(Intercept)"], tmb["fixef"]["x"]], 1e-3, "beta")
    assert_rel(np.asarray(res.bse)[:2], [tmb["se"]["(Intercept)"], tmb["se"]["x"]], 1e-3, "SEs")
    assert_rel(float(res.params["sd_a"]), tmb["re_sd"]["a"], 1e-3, "SD a")
    assert_rel(float(res.params["sd_b"]), tmb["re_sd"]["b"], 1e-3, "SD b")


def test_terms_touching_two_levels_of_a_plate_fall_back_to_dense():
    rng = np.random.default_rng(4)
    g, h = rng.integers(0, 12, 300), rng.integers(0, 8, 300)
    y = rng.normal(size=300) + 0.5 * rng.normal(size=12)[g]

    def neighbours(g, h, y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 10))
        su = numpyro.sample("su", dist.HalfNormal(2))
        sw = numpyro.sample("sw", dist.HalfNormal(2))
        with numpyro.plate("G", 12):
            u = numpyro.sample("u", dist.Normal(0, su))
        with numpyro.plate("H", 8):
            w = numpyro.sample("w", dist.Normal(0, sw))
        with numpyro.plate("obs", 300):
            # each observation touches its own level of u and the next one
            numpyro.sample("y", dist.Normal(mu + u[g] + 0.5 * u[(g + 1) % 12] + w[h], 1.0), obs=y)

    res = fit_mle(neighbours, g, h, y=y, random=["u", "w"])
    assert isinstance(res.problem.random.structure, Dense) and res.converged


def test_block_diagonal_structure_is_kept_for_one_plate():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(10), 5)
    y = rng.normal(size=50) + rng.normal(size=10)[g]

    def one(g, y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 10))
        su = numpyro.sample("su", dist.HalfNormal(2))
        with numpyro.plate("G", 10):
            u = numpyro.sample("u", dist.Normal(0, su))
        with numpyro.plate("obs", 50):
            numpyro.sample("y", dist.Normal(mu + u[g], 1.0), obs=y)

    res = fit_mle(one, g, y=y, random=["u"])
    assert isinstance(res.problem.random.structure, BlockDiagonal)
    assert res.problem.random.structure.kind == "block-diagonal"


def test_crossed_effects_keep_their_refusals(crossed_fit):
    d = _case("crossed_lmm")
    with pytest.raises(ValueError, match="nagq=5: adaptive Gauss–Hermite quadrature.*crossed or nested"):
        fit_mle(crossed_lmm, d["x"], d["a"], d["b"], y=d["y"], random=["u_a", "u_b"], nagq=5)
    with pytest.raises(ValueError, match="crossed random effects"):
        crossed_fit.with_cov("hc0")


def test_the_sparse_path_refuses_what_would_not_fit_in_memory(monkeypatch):
    d = _case("crossed_lmm")
    monkeypatch.setenv("MLEPPL_MAX_MEMORY", "1e6")
    with pytest.raises(
        MemoryError,
        match=r"sparse Laplace path \(sparse \(A, B\); Schur complement onto 20 coordinates\) needs about 1(\.\d+)? GB",
    ):
        fit_mle(crossed_lmm, d["x"], d["a"], d["b"], y=d["y"], random=["u_a", "u_b"])


def test_group_level_predictions_of_a_crossed_fit(crossed_fit):
    res = crossed_fit
    d = _case("crossed_lmm")
    beta = np.asarray(res.params["beta"])
    ua, ub = (res.random_effects[k]["mode"].to_numpy() for k in ("u_a", "u_b"))
    s, sa, sb = (float(res.params[k]) for k in ("sigma", "sd_a", "sd_b"))
    n = 4000
    x, a, b = d["x"][:4], d["a"][:4], d["b"][:4]
    grp = res.predictive(0, x, a, b, num_samples=n, level="group")["y"]
    pop = res.predictive(1, x, a, b, num_samples=n)["y"]
    # seen levels: y ~ N(Xβ + û_a + û_b, σ²); a new level of both: y ~ N(Xβ, σ_a² + σ_b² + σ²); 5 MC SEs
    assert np.all(np.abs(grp.mean(0) - (beta[0] + beta[1] * x + ua[a] + ub[b])) < 5 * s / np.sqrt(n))
    sd_pop = np.sqrt(sa**2 + sb**2 + s**2)
    assert np.all(np.abs(pop.mean(0) - (beta[0] + beta[1] * x)) < 5 * sd_pop / np.sqrt(n))


@pytest.mark.slow
def test_crossed_lrt_against_a_model_without_one_factor(crossed_fit):
    d = _case("crossed_lmm")

    def only_a(x, a, b, y=None):
        beta = numpyro.sample("beta", dist.Normal(0, 10).expand([2]).to_event(1))
        sa = numpyro.sample("sd_a", dist.HalfNormal(2))
        s = numpyro.sample("sigma", dist.HalfNormal(2))
        with numpyro.plate("A", 30):
            ua = numpyro.sample("u_a", dist.Normal(0, sa))
        with numpyro.plate("obs", x.shape[0]):
            numpyro.sample("y", dist.Normal(beta[0] + beta[1] * x + ua[a], s), obs=y)

    small = fit_mle(only_a, d["x"], d["a"], d["b"], y=d["y"], random=["u_a"])
    t = mleppl.lrt(small, crossed_fit)
    assert t.df == 1 and t.reference == "0.5 chi2(0) + 0.5 chi2(1)"
    stat = 2 * (crossed_fit.loglik - small.loglik)
    assert_rel(t.statistic, stat, 1e-12, "LR statistic")
    # the boundary mixture: half the χ²₁ tail
    from scipy.stats import chi2

    assert_rel(t.p_value, 0.5 * chi2.sf(stat, 1), 1e-10, "p-value")


@pytest.mark.slow
def test_crossed_profile_interval_and_parametric_bootstrap(crossed_fit):
    res = crossed_fit
    ci = res.conf_int(method="profile")
    for name in ("sd_a", "sd_b", "sigma"):
        lo, hi = ci.loc[name, "lower"], ci.loc[name, "upper"]
        assert lo < float(res.params[name]) < hi
    boot = mleppl.bootstrap(res, 20, kind="parametric", rng_key=1)
    assert boot.n_failed == 0 and np.all(np.isfinite(boot.se()))


@pytest.mark.slow
def test_salamanders_equals_glmmtmb():
    df = pd.read_csv(DATA / "salamanders.csv")
    ref = _ref("salamanders", "glmmTMB")
    spp = pd.Categorical(df["spp"], categories=["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"]).codes
    mined_no = (df["mined"] == "no").to_numpy(float)
    site = pd.Categorical(df["site"], categories=REF["salamanders"]["data"]["levels"]["site"]).codes
    X = np.column_stack([np.ones(len(df)), np.eye(7)[spp][:, 1:], mined_no])
    n_site = int(site.max()) + 1

    def model(X, site, y=None):
        beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
        s_site = numpyro.sample("sd_site", dist.HalfNormal(2))
        s_obs = numpyro.sample("sd_obs", dist.HalfNormal(2))
        with numpyro.plate("site", n_site):
            u = numpyro.sample("u_site", dist.Normal(0, s_site))
        with numpyro.plate("obs", X.shape[0]):
            e = numpyro.sample("u_obs", dist.Normal(0, s_obs))
            numpyro.sample("y", dist.Poisson(jnp.exp(X @ beta + u[site] + e)), obs=y)

    res = fit_mle(model, X, site, y=df["count"].to_numpy(float), random=["u_site", "u_obs"])
    assert isinstance(res.problem.random.structure, Sparse) and res.converged
    assert_rel(res.loglik, ref["loglik"], 1e-8, "log-likelihood")
    names = ["(Intercept)", "sppPR", "sppDM", "sppEC-A", "sppEC-L", "sppDES-L", "sppDF", "minedno"]
    assert_rel(np.asarray(res.params["beta"]), [ref["fixef"][k] for k in names], 1e-3, "fixed effects")
    assert_rel(np.asarray(res.bse)[:8], [ref["se"][k] for k in names], 1e-3, "SEs")
    assert_rel(float(res.params["sd_site"]), ref["re_sd"]["site"], 1e-3, "SD site")
    assert_rel(float(res.params["sd_obs"]), ref["re_sd"]["obs"], 1e-3, "SD obs")


@pytest.mark.slow
def test_grouseticks_three_factors_equal_glmmtmb():
    df = pd.read_csv(DATA / "grouseticks.csv")
    ref = _ref("grouseticks", "glmmTMB")
    year = pd.Categorical(df["YEAR"].astype(str), categories=["95", "96", "97"]).codes
    X = np.column_stack([np.ones(len(df)), year == 1, year == 2, df["HEIGHT_s"]]).astype(float)
    brood = pd.factorize(df["BROOD"])[0]
    loc = pd.factorize(df["LOCATION"])[0]
    nb, nl = int(brood.max()) + 1, int(loc.max()) + 1

    def model(X, brood, loc, y=None):
        beta = numpyro.sample("beta", dist.Normal(0, 10).expand([4]).to_event(1))
        sb = numpyro.sample("sd_brood", dist.HalfNormal(2))
        si = numpyro.sample("sd_index", dist.HalfNormal(2))
        sl = numpyro.sample("sd_location", dist.HalfNormal(2))
        with numpyro.plate("brood", nb):
            ub = numpyro.sample("u_brood", dist.Normal(0, sb))
        with numpyro.plate("location", nl):
            ul = numpyro.sample("u_location", dist.Normal(0, sl))
        with numpyro.plate("obs", X.shape[0]):
            ui = numpyro.sample("u_index", dist.Normal(0, si))
            numpyro.sample("y", dist.Poisson(jnp.exp(X @ beta + ub[brood] + ul[loc] + ui)), obs=y)

    res = fit_mle(
        model, X, brood, loc, y=df["TICKS"].to_numpy(float), random=["u_brood", "u_location", "u_index"]
    )
    assert isinstance(res.problem.random.structure, Sparse) and res.converged
    assert res.problem.random.structure.names[0] == "obs"  # the largest factor is eliminated
    assert_rel(res.loglik, ref["loglik"], 1e-8, "log-likelihood")
    names = ["(Intercept)", "YEAR96", "YEAR97", "HEIGHT_s"]
    assert_rel(np.asarray(res.params["beta"]), [ref["fixef"][k] for k in names], 1e-3, "fixed effects")
    assert_rel(np.asarray(res.bse)[:4], [ref["se"][k] for k in names], 1e-3, "SEs")
    for k, site in (("BROOD", "sd_brood"), ("INDEX", "sd_index"), ("LOCATION", "sd_location")):
        assert_rel(float(res.params[site]), ref["re_sd"][k], 1e-3, k)


def test_large_marginal_fits_start_from_the_fixed_part(crossed_fit, monkeypatch):
    from mleppl.fitting import fit as fitting
    from mleppl.fitting.starts import fixed_part_start, start

    d = _case("crossed_lmm")
    pr = crossed_fit.problem
    with jax.enable_x64(True):
        z0 = start(pr, {}, jax.random.PRNGKey(0), 0)
        z = np.asarray(fixed_part_start(pr, z0))
    # with the effects at zero the fixed part is least squares: β̂ = OLS, σ̂² = RSS/n
    X = np.column_stack([np.ones_like(d["x"]), d["x"]])
    b, *_ = np.linalg.lstsq(X, d["y"], rcond=None)
    sigma = np.sqrt(np.mean((d["y"] - X @ b) ** 2))
    labels = pr.layout.z_labels()
    at = {lab: z[i] for i, lab in enumerate(labels)}
    assert_rel(np.array([at["beta[0]"], at["beta[1]"]]), b, 1e-5, "OLS start")
    assert_rel(np.exp(at["u(sigma)"]), sigma, 1e-5, "residual SD start")
    # the random-effect scales do not enter that likelihood: left where the default start has them
    # (to rounding: the start's bijections are one compiled program, the fixed part's eager)
    for lab in ("u(sd_a)", "u(sd_b)"):
        assert at[lab] == pytest.approx(float(np.asarray(z0)[labels.index(lab)]), rel=1e-13, abs=0)
    monkeypatch.setattr(fitting, "FIXED_START_ROWS", 0)
    res = fit_mle(crossed_lmm, d["x"], d["a"], d["b"], y=d["y"], random=["u_a", "u_b"])
    assert res.converged and abs(res.loglik - crossed_fit.loglik) < 1e-9
    assert np.max(np.abs(res.z - crossed_fit.z)) < 1e-6


def test_predictions_at_levels_the_fit_never_saw_are_refused(crossed_fit):
    # index 35 of a 30-level plate: JAX would clamp it to level 29 and predict silently
    with pytest.raises(
        ValueError, match=r"predictive: argument 'a': expected index values in 0\.\.29.*level='population'"
    ):
        crossed_fit.predictive(
            0, np.array([0.1]), np.array([35]), np.array([3]), num_samples=10, level="group"
        )
