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
