"""Row buckets (mleppl.fitting.buckets): a new dataset size reuses the compiled fit program
and gives the estimates of a fit to the unpadded data."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import mleppl
from mleppl.core import cache
from mleppl.fitting import buckets
from mleppl.fitting import fit as fit_module

RNG = np.random.default_rng(31)
N = 800
X = np.column_stack([np.ones(N), RNG.normal(size=(N, 2))])
Y_LIN = X @ np.array([1.0, -0.5, 0.25]) + RNG.normal(0, 0.7, N)
G = 30
GROUP = RNG.integers(0, G, N)
Y_BIN = (RNG.uniform(size=N) < 1 / (1 + np.exp(-(X[:, 1] + RNG.normal(0, 0.8, G)[GROUP])))).astype(float)


def linear(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def linear_det(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("obs", X.shape[0]):
        mu = numpyro.deterministic("mu", X @ beta)
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def glmm(x, g, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
    su = numpyro.sample("sigma_u", dist.HalfNormal(2))
    with numpyro.plate("group", G):
        u = numpyro.sample("u", dist.Normal(0, su))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=b[0] + b[1] * x + u[g]), obs=y)


def _fit_programs(model) -> set:
    """The compiled fit programs of ``model`` (keys: the model's structure, ``"fit"``, options)."""
    return {id(v) for k, v in cache.items() if k[0] is model and "fit" in k}


@pytest.fixture
def unpadded(monkeypatch):
    """Fits with bucketing off (the reference: a program specialised to n) until ``.undo()``."""
    monkeypatch.setattr(fit_module, "padded", lambda problem: problem)
    return monkeypatch


def test_bucket_sizes():
    sizes = [buckets.bucket_size(n) for n in range(1, 5000)]
    assert all(b >= n and b % 8 == 0 for n, b in zip(range(1, 5000), sizes))
    assert all(buckets.bucket_size(b) == b for b in set(sizes))  # a bucket size is its own bucket
    assert sizes == sorted(sizes)
    # the padding is at most one bucket step (2^(1/4) = 1.19) plus the rounding to 8
    assert all(b <= 1.19 * n + 8 for n, b in zip(range(1, 5000), sizes))


def test_new_size_reuses_the_fit_program_and_matches_the_closed_form():
    first = mleppl.fit_mle(linear, X[:650], y=Y_LIN[:650])
    programs = _fit_programs(linear)
    assert first.problem.nobs == 650 and len(programs) >= 1
    for n in (700, 728):  # the bucket of 650 (728)
        assert buckets.bucket_size(n) == buckets.bucket_size(650)
        res = mleppl.fit_mle(linear, X[:n], y=Y_LIN[:n])
        assert _fit_programs(linear) == programs, "a new size in the bucket compiled a new program"
        beta, *_ = np.linalg.lstsq(X[:n], Y_LIN[:n], rcond=None)
        rss = float(np.sum((Y_LIN[:n] - X[:n] @ beta) ** 2))
        np.testing.assert_allclose(res.params["beta"], beta, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(res.params["sigma"], np.sqrt(rss / n), rtol=1e-12)
        np.testing.assert_allclose(res.loglik, -0.5 * n * (np.log(2 * np.pi * rss / n) + 1), rtol=1e-12)
        assert res.nobs == n


def test_padded_fit_equals_the_unpadded_fit(unpadded):
    ref = mleppl.fit_mle(linear, X[:611], y=Y_LIN[:611])
    assert not ref.problem.rows
    unpadded.undo()
    res = mleppl.fit_mle(linear, X[:611], y=Y_LIN[:611])
    assert buckets.padded(res.problem).rows == ("obs",)
    np.testing.assert_allclose(res.estimate, ref.estimate, rtol=1e-12, atol=1e-14)
    # the Hessians differ by the rounding of sums of other lengths
    np.testing.assert_allclose(res.cov, ref.cov, rtol=1e-9, atol=1e-12 * np.abs(ref.cov).max())
    np.testing.assert_allclose(res.loglik, ref.loglik, rtol=1e-13)


def test_laplace_fit_on_a_new_size_reuses_its_program(unpadded):
    ref = mleppl.fit_mle(glmm, X[:500, 1], GROUP[:500], y=Y_BIN[:500], random=["u"])
    unpadded.undo()
    assert buckets.bucket_size(480) == buckets.bucket_size(500)
    mleppl.fit_mle(glmm, X[:480, 1], GROUP[:480], y=Y_BIN[:480], random=["u"])
    programs = _fit_programs(glmm)
    res = mleppl.fit_mle(glmm, X[:500, 1], GROUP[:500], y=Y_BIN[:500], random=["u"])
    assert _fit_programs(glmm) == programs
    np.testing.assert_allclose(res.estimate, ref.estimate, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.loglik, ref.loglik, rtol=1e-12)
    np.testing.assert_allclose(res.se["b"], ref.se["b"], rtol=1e-8)
    np.testing.assert_allclose(res.random_modes["u"], ref.random_modes["u"], rtol=1e-8, atol=1e-10)


def test_where_bucketing_does_not_apply_the_data_go_unpadded():
    res = mleppl.fit_mle(linear_det, X[:100], y=Y_LIN[:100])  # a per-observation deterministic site
    assert buckets.padded(res.problem) is res.problem
    assert res.deterministic["mu"].shape == (100,)
