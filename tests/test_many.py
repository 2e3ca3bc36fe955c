"""fit_many: one model, many datasets, one compiled batched program; checked against single fits."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from conftest import assert_rel

import mleppl
from mleppl import fit_many, fit_mle

RNG = np.random.default_rng(3)
N, B = 80, 12
X = np.column_stack([np.ones(N), RNG.normal(size=N), RNG.binomial(1, 0.5, N)])


def nb2(X, y=None):
    b = numpyro.sample("b", dist.Normal(0, 5).expand([X.shape[1]]).to_event(1))
    phi = numpyro.sample("phi", dist.Exponential(1.0))
    with numpyro.plate("n", X.shape[0]):
        numpyro.sample("y", dist.NegativeBinomial2(jnp.exp(X @ b), phi), obs=y)


def counts(b_size=B):
    beta = np.column_stack(
        [RNG.normal(1.0, 0.5, b_size), RNG.normal(0, 0.4, b_size), RNG.normal(0, 0.4, b_size)]
    )
    mu = np.exp(beta @ X.T)
    phi = RNG.uniform(1.0, 5.0, size=(b_size, 1))
    return RNG.negative_binomial(phi, phi / (phi + mu)).astype(float)


@pytest.fixture(scope="module")
def genes():
    y = counts()
    return y, fit_many(nb2, X, y=y)


def test_every_fit_equals_the_single_fit(genes):
    y, res = genes
    assert res.params["b"].shape == (B, 3) and res.se["phi"].shape == (B,)
    assert res.loglik.shape == (B,) and res.converged.all()
    for i in (0, 5, B - 1):
        one = fit_mle(nb2, X, y=y[i])
        assert_rel(res.params["b"][i], one.params["b"], 1e-8, "estimates")
        assert_rel(res.se["b"][i], one.se["b"], 1e-6, "standard errors")
        assert_rel(res.loglik[i], one.loglik, 1e-12, "log-likelihood")


def test_a_single_fit_and_the_tidy_summary(genes):
    y, res = genes
    r3 = res[3]
    assert isinstance(r3, mleppl.MLEResult) and r3.converged
    assert_rel(r3.estimate, res.estimate[3], 1e-14, "res[i] is the i-th fit")
    table = res.summary()
    assert len(table) == B * 4 and list(table.columns[:4]) == ["fit", "parameter", "estimate", "se"]
    with pytest.raises(IndexError):
        res[B]


def test_a_failed_fit_is_a_status_not_an_abort():
    def poisson(X, y=None):
        b = numpyro.sample("b", dist.Normal(0, 5).expand([X.shape[1]]).to_event(1))
        with numpyro.plate("n", X.shape[0]):
            numpyro.sample("y", dist.Poisson(jnp.exp(X @ b)), obs=y)

    y = RNG.poisson(2.0, size=(6, N)).astype(float)
    y[2] = 0.0  # all zeros: the intercept runs to −∞, no finite MLE
    with pytest.warns(mleppl.MLEWarning, match="1 of 6 fits did not converge"):
        res = fit_many(poisson, X, y=y)
    assert res.converged.tolist() == [True, True, False, True, True, True]
    assert res.status[2] != mleppl.Status.CONVERGED
    for i in (0, 5):
        assert_rel(res.params["b"][i], fit_mle(poisson, X, y=y[i]).params["b"], 1e-8, "the others")


def test_bad_batched_arguments_are_named():
    with pytest.raises(ValueError, match="batched: expected names of array arguments"):
        fit_many(nb2, X, y=counts(3), batched=("z",))
    with pytest.raises(ValueError, match="at least one dataset"):
        fit_many(nb2, X, y=np.zeros((0, N)))
    with pytest.raises(ValueError, match="one batch size"):
        fit_many(nb2, np.broadcast_to(X, (4, *X.shape)), y=counts(3), batched=("X", "y"))


def test_fits_the_fast_solver_gives_up_are_refitted_like_fit_mle(monkeypatch):
    """With the line-search Newton capped at 2 passes no fit converges there: every fit goes
    through the trust-region fallback and still equals its single fit."""
    import mleppl.fitting.program as program

    y = counts(4)
    monkeypatch.setattr(program, "FAST_MAX_STEPS", 2)
    mleppl.clear_cache()  # compiled programs do not key on the cap
    try:
        res = fit_many(nb2, X, y=y)
    finally:
        mleppl.clear_cache()
    assert res.converged.all()
    for i in (0, 3):
        one = fit_mle(nb2, X, y=y[i])
        assert_rel(res.params["b"][i], one.params["b"], 1e-8, "estimates after the fallback")
        assert_rel(res.se["phi"][i], one.se["phi"], 1e-6, "standard errors after the fallback")
        assert res[i].n_steps == one.n_steps  # the trust-region path's own step count


def test_line_search_newton_converges_or_hands_the_fit_back():
    import jax
    import jax.numpy as jnp

    from mleppl.core.status import Status
    from mleppl.solvers.batched import line_search_newton

    a = jnp.array([[3.0, 1.0], [1.0, 2.0]])

    def fun(z):  # smooth, convex, not quadratic: Newton needs several steps
        return jnp.sum(jnp.exp(z)) - jnp.sum(z * jnp.array([2.0, 0.5])) + 0.5 * z @ a @ z

    with jax.enable_x64(True):
        res = line_search_newton(fun, jnp.array([3.0, -4.0]), tol=1e-12)
        assert int(res.status) == Status.CONVERGED
        g = jax.grad(fun)(res.z)
        assert float(jnp.max(jnp.abs(g))) < 1e-9
        assert_rel(res.hess, jax.hessian(fun)(res.z), 1e-12, "the Hessian is the one at the returned point")
        capped = line_search_newton(fun, jnp.array([3.0, -4.0]), tol=1e-12, max_steps=1)
        assert int(capped.status) == Status.MAX_STEPS
        bad = line_search_newton(lambda z: jnp.log(z[0]) + z[1] ** 2, jnp.array([-1.0, 0.0]), tol=1e-12)
        assert int(bad.status) == Status.NONFINITE_START


def test_airway_per_gene_workflow():
    """The worked example of docs/guide/many.md on a slice of the bundled airway genes:
    per-gene starts, equality with single fits and with statsmodels' NB2 with an offset,
    the boundary verdict checked against the Poisson limit, and the known responders."""
    import statsmodels.api as sm
    from conftest import REF_EST, REF_SE

    from models import airway

    X, offset, Y, genes, _ = airway.load()
    known = ["ENSG00000120129", "ENSG00000152583", "ENSG00000179094", "ENSG00000163884", "ENSG00000096060"]
    pick = np.r_[np.arange(40), [int(np.flatnonzero(genes == g)[0]) for g in known]]
    Y, genes = Y[pick], genes[pick]
    B0 = np.zeros((len(pick), X.shape[1]))
    B0[:, 0] = np.log(np.mean(Y / np.exp(offset), axis=1))
    with pytest.warns(mleppl.ConvergenceWarning, match="running to infinity or a boundary"):
        res = fit_many(airway.model, X, offset, y=Y, init={"beta": B0})
    table = res.summary(fit_labels=genes)
    assert set(table["fit"]) == set(genes) and len(table) == len(pick) * 6

    conv = np.flatnonzero(res.converged)
    assert conv.size >= 15
    for i in conv[:3]:
        one = fit_mle(airway.model, X, offset, y=Y[i], init={"beta": B0[i]})
        assert_rel(res.params["beta"][i], one.params["beta"], 1e-8, "estimates vs fit_mle")
        assert_rel(res.se["beta"][i], one.se["beta"], 1e-6, "standard errors vs fit_mle")
        ref = sm.NegativeBinomial(Y[i], X, loglike_method="nb2", offset=offset).fit(
            start_params=np.r_[one.params["beta"], one.params["alpha"]], method="newton", tol=1e-12, disp=0
        )
        est = np.r_[res.params["beta"][i], res.params["alpha"][i]]
        se = np.r_[res.se["beta"][i], res.se["alpha"][i]]
        assert_rel(est, ref.params, REF_EST, "estimates vs statsmodels NB2 with offset")
        assert_rel(se, ref.bse, REF_SE, "standard errors vs statsmodels NB2 with offset")

    # a gene reported at the boundary α = 0: its NB2 log-likelihood there is the Poisson
    # GLM's maximum (the model's limit), which no interior α exceeds
    at_bound = np.flatnonzero(res.status == mleppl.Status.DIVERGING)
    assert at_bound.size >= 5
    for i in at_bound[:2]:
        pois = sm.GLM(Y[i], X, family=sm.families.Poisson(), offset=offset).fit(tol=1e-14)
        assert res.loglik[i] <= pois.llf + 1e-9 and res.loglik[i] >= pois.llf - 1e-6
        assert res.params["alpha"][i] < 1e-9
        # no Wald standard error for a parameter at its boundary, as in the single fit
        assert np.isnan(res.se["alpha"][i]) and np.all(np.isfinite(res.se["beta"][i]))
        with pytest.warns(mleppl.MLEWarning):
            one = res[i]
        # res[i] runs fit_mle's full diagnosis: the same verdict, on the same site
        assert [(x.kind, x.sites) for x in one.issues] == [("boundary", ("alpha",))]
        assert np.isnan(one.se["alpha"])

    # the dexamethasone responders come out strongly up-regulated
    for g in known:
        i = int(np.flatnonzero(genes == g)[0])
        assert res.converged[i], g
        z = res.params["beta"][i, 4] / res.se["beta"][i, 4]
        assert res.params["beta"][i, 4] / np.log(2) > 2 and z > 10, g


def test_line_search_newton_runs_to_a_boundary_in_a_few_passes():
    """f = eᶻ⁰ + (z₁ − 1)²: z₀ runs to −∞ (a dispersion to its boundary). Newton moves it by
    exactly 1 per pass; the step expansion doubles it, and a bounded coordinate past
    BOUNDARY_Z stops the lane as DIVERGING (an unbounded one is left to the pass cap)."""
    import jax
    import jax.numpy as jnp

    from mleppl.core.status import Status
    from mleppl.solvers.batched import BOUNDARY_Z, line_search_newton

    def fun(z):
        return jnp.exp(z[0]) + (z[1] - 1.0) ** 2

    with jax.enable_x64(True):
        res = line_search_newton(fun, jnp.array([0.0, 0.0]), tol=1e-12, bounded=jnp.array([True, False]))
        assert int(res.status) == Status.DIVERGING
        assert float(res.z[0]) < -BOUNDARY_Z and abs(float(res.z[1]) - 1.0) < 1e-8
        assert int(res.n_newton) <= 8  # 3 passes; without the expansion: stalled after 23, at z₀ = −22
        free = line_search_newton(fun, jnp.array([0.0, 0.0]), tol=1e-12)
        assert int(free.status) != Status.DIVERGING


def test_per_fit_starts_are_checked_and_used():
    rng = np.random.default_rng(12)  # own stream: the module's RNG depends on test order
    mu = np.exp(1.2 + 0.3 * X[:, 1] - 0.2 * X[:, 2])
    y = rng.negative_binomial(2.5, 2.5 / (2.5 + mu), size=(5, N)).astype(float)
    with pytest.raises(ValueError, match=r"init\['b'\]: expected per-fit starts of shape \(5, 3\)"):
        fit_many(nb2, X, y=y, init={"b": np.zeros((4, 3))})
    bad = np.full(5, 2.0)
    bad[3] = -1.0
    with pytest.raises(ValueError, match=r"init\['phi'\]: expected values inside the support.*fit 3"):
        fit_many(nb2, X, y=y, init={"phi": bad})
    b0 = np.zeros((5, 3))
    b0[:, 0] = np.log(y.mean(axis=1))
    res = fit_many(nb2, X, y=y, init={"b": b0, "phi": 2.0})
    plain = fit_many(nb2, X, y=y)
    assert res.converged.all()
    assert_rel(res.params["b"], plain.params["b"], 1e-8, "same fits from per-fit starts")
    assert_rel(res[2].estimate, res.estimate[2], 1e-14, "res[i] with per-fit starts")


def test_the_pool_runs_each_fit_as_the_single_lane_solver_does():
    """Pooled lanes (a finished fit's lane takes the next fit) give every fit the iterates of
    its own line-search Newton; fits from n_fits on are padding, not run."""
    import jax
    import jax.numpy as jnp

    from mleppl.solvers.batched import line_search_newton, pooled_line_search_newton

    rng = np.random.default_rng(11)  # own stream: the module's RNG depends on test order
    mu = np.exp(1.0 + 0.4 * X[:, 1])
    y = rng.negative_binomial(3.0, 3.0 / (3.0 + mu), size=(24, N)).astype(float)
    # different starts, different pass counts
    z0 = np.column_stack([np.log(y.mean(axis=1)), np.zeros((24, 3))]) + 0.3 * rng.normal(size=(24, 4))

    def nll(z, yi):
        c, mu = jnp.exp(z[3]), jnp.exp(jnp.asarray(X) @ z[:3])
        return -jnp.sum(dist.NegativeBinomial2(mu, c, validate_args=False).log_prob(yi))

    with jax.enable_x64(True):
        y, z0 = jnp.asarray(y), jnp.asarray(z0)
        one = jax.vmap(lambda z, yi: line_search_newton(lambda w: nll(w, yi), z, tol=1e-12))(z0, y)
        pool = pooled_line_search_newton(nll, (y,), (0,), z0, 20, lanes=5, tol=1e-12)
    assert len(set(np.asarray(one.n_newton[:20]).tolist())) > 1
    assert np.all(np.asarray(one.status[:20]) == 0)  # converged: rounding cannot change the end point
    # the same iterates up to rounding (XLA vectorizes 5 lanes and 24 lanes differently)
    assert_rel(np.asarray(pool.z[:20]), np.asarray(one.z[:20]), 1e-10, "pooled vs one lane per fit")
    assert np.max(np.abs(np.asarray(pool.n_newton[:20]) - np.asarray(one.n_newton[:20]))) <= 1
    np.testing.assert_array_equal(np.asarray(pool.status[:20]), np.asarray(one.status[:20]))
    np.testing.assert_array_equal(np.asarray(pool.z[20:]), np.asarray(z0[20:]))  # padding untouched
