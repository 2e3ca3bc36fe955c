"""Nonparametric and parametric bootstrap (``mleppl.bootstrap``) and bootstrap intervals.

Monte-Carlo tolerances: a bootstrap standard deviation from B draws has relative standard
error ≈ 1/√(2B) (normal approximation); with B = 400 that is 3.5 %, and the checks allow
4 of those (14 %) plus the O(1/n) gap between bootstrap and model-based SEs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from _unc_models import logit, logit_data, normal, poisson, poisson_data
from conftest import assert_rel

import mleppl
from mleppl import fit_mle
from mleppl.uncertainty import bootstrap as _bootstrap

B = 400
MC_SD = 4.0 / np.sqrt(2 * B)


@pytest.fixture(scope="module")
def logit_fit():
    X, y = logit_data(np.random.default_rng(51), n=300)
    return X, y, fit_mle(logit, X, y=y)


@pytest.fixture(scope="module")
def boot_np(logit_fit):
    *_, res = logit_fit
    return mleppl.bootstrap(res, B, rng_key=1)


def test_nonparametric_shapes_and_scale(logit_fit, boot_np):
    *_, res = logit_fit
    assert boot_np.draws["beta"].shape == (B, 3)
    assert boot_np.n_failed == 0 and boot_np.kind == "nonparametric"
    # the nonparametric bootstrap SD estimates the sandwich SE (model-free)
    assert_rel(boot_np.se(), res.with_cov("hc0").bse, MC_SD + 0.02, "bootstrap sd vs HC0 se")
    with pytest.raises(ValueError, match="read-only"):
        boot_np.draws["beta"][0, 0] = 0.0


def test_reproducible_and_key_dependent(logit_fit, boot_np):
    *_, res = logit_fit
    again = mleppl.bootstrap(res, B, rng_key=1)
    np.testing.assert_array_equal(again.flat, boot_np.flat)
    other = mleppl.bootstrap(res, B, rng_key=jax.random.PRNGKey(2))
    assert not np.allclose(other.flat, boot_np.flat)
    # chunking does not change the draws' distribution, only their batching
    chunked = mleppl.bootstrap(res, 50, rng_key=3, chunk_size=16)
    assert chunked.draws["beta"].shape == (50, 3) and chunked.n_failed == 0


def test_weighted_refit_equals_fit_on_resampled_data(logit_fit):
    # A multinomial weight vector is the data set with unit i repeated w_i times.
    X, y, res = logit_fit
    w = np.random.default_rng(5).multinomial(len(y), np.full(len(y), 1 / len(y))).astype(float)
    rep = np.repeat(np.arange(len(y)), w.astype(int))
    direct = fit_mle(logit, X[rep], y=y[rep])
    with jax.enable_x64(True):
        chord = _bootstrap.chord_program(res.problem, "nonparametric")
        h_chol = jnp.linalg.cholesky(jnp.asarray(res.hessian))
        g0 = -(jnp.asarray(w) @ jnp.asarray(_bootstrap.scores(res.problem, res.z)))
        z, ok = chord(jnp.asarray(w)[None], g0[None], jnp.asarray(res.z), h_chol, res.problem.data)
    assert bool(ok[0])
    # fit_mle stops at λ²/2 ≤ 1e-12, the bootstrap at 1e-10: within ~1.4e-5 standard errors
    assert np.all(np.abs(np.asarray(z[0]) - direct.estimate) <= 3e-5 * direct.bse)


def test_fallback_optimizer_gives_the_same_answer(logit_fit, boot_np, monkeypatch):
    # With one chord step allowed, nearly every refit goes to the trust-region fallback.
    *_, res = logit_fit
    monkeypatch.setattr(_bootstrap, "CHORD_STEPS", 1)
    mleppl.clear_cache()
    fb = mleppl.bootstrap(res, 40, rng_key=1, chunk_size=40)
    ref = mleppl.bootstrap(res, 40, rng_key=1, chunk_size=40)  # same programs (both patched)
    np.testing.assert_allclose(fb.flat, ref.flat)
    monkeypatch.undo()
    mleppl.clear_cache()
    normal_path = mleppl.bootstrap(res, 40, rng_key=1, chunk_size=40)
    # the fallback stops at λ²/2 ≤ 1e-12, the chord at 1e-10: within ~1.4e-5 standard errors
    assert np.all(np.abs(fb.flat - normal_path.flat) <= 3e-5 * res.bse)


def test_parametric_poisson():
    X, y = poisson_data(np.random.default_rng(52), n=300)
    # equidispersed counts for the parametric bootstrap to be the right model
    y = np.random.default_rng(53).poisson(np.exp(X @ np.array([0.3, -0.1, -0.4]))).astype(float)
    res = fit_mle(poisson, X, y=y)
    boot = mleppl.bootstrap(res, B, kind="parametric", rng_key=4)
    assert boot.n_failed == 0 and boot.kind == "parametric"
    assert_rel(boot.se(), res.bse, MC_SD + 0.02, "parametric sd vs model se")
    # bootstrap means centre on the estimate (bias O(1/n) ≪ se/√B · 4)
    assert np.all(np.abs(boot.flat.mean(0) - res.estimate) < 4 * res.bse / np.sqrt(B) + 0.01)


def test_parametric_scale_parameter():
    y = np.random.default_rng(54).normal(2.0, 3.0, size=40)
    res = fit_mle(normal, y=y)
    boot = mleppl.bootstrap(res, B, kind="parametric", rng_key=5)
    assert np.all(boot.draws["sigma"] > 0)
    # σ̂ of a normal sample: sd ≈ σ̂/√(2n)
    assert_rel(boot.se()[1], res.params["sigma"] / np.sqrt(2 * len(y)), MC_SD + 0.05, "sd of sigma")


def test_conf_int_methods(logit_fit, boot_np):
    *_, res = logit_fit
    pct = res.conf_int(method="bootstrap", boot=boot_np)
    np.testing.assert_array_equal(pct.to_numpy(), boot_np.conf_int().to_numpy())
    bca = boot_np.conf_int(interval="bca")
    wald = res.with_cov("hc0").conf_int()
    for ci in (pct, bca):
        assert list(ci.columns) == ["lower", "upper"] and list(ci.index) == res.param_names
        # all three estimate the same interval at n = 300; they differ by MC error ~ se/5
        np.testing.assert_allclose(ci.to_numpy(), wald.to_numpy(), atol=0.1)
    assert np.all(np.isfinite(boot_np.acceleration))
    direct = res.conf_int(method="bootstrap", n_boot=30, rng_key=7)
    assert direct.shape == (3, 2)


def test_bad_options(logit_fit, boot_np):
    *_, res = logit_fit
    with pytest.raises(ValueError, match="n_boot: expected a positive integer"):
        mleppl.bootstrap(res, 0)
    with pytest.raises(ValueError, match="kind: expected one of"):
        mleppl.bootstrap(res, 10, kind="wild")
    with pytest.raises(ValueError, match="interval: expected one of"):
        boot_np.conf_int(interval="studentized")
    with pytest.raises(TypeError, match="unexpected options"):
        res.conf_int(method="bootstrap", boot=boot_np, n_boot=5)
    with pytest.raises(TypeError, match="expected an MLEResult"):
        mleppl.bootstrap(object(), 10)


def test_nonparametric_needs_a_plate():
    def two(y1=None, y2=None):
        m = numpyro.sample("m", dist.Normal(0, 10))
        with numpyro.plate("a", y1.shape[0]):
            numpyro.sample("y1", dist.Normal(m, 1), obs=y1)
        with numpyro.plate("b", y2.shape[0]):
            numpyro.sample("y2", dist.Normal(m, 1), obs=y2)

    res = fit_mle(two, y1=np.arange(5.0), y2=np.arange(7.0))
    with pytest.raises(ValueError, match="observation plate"):
        mleppl.bootstrap(res, 10)
    assert mleppl.bootstrap(res, 20, kind="parametric").n_failed == 0
