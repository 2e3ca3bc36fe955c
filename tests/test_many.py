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
