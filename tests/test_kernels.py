"""The exact Gamma–Poisson kernel that replaces NumPyro's betaln-based log-density in the likelihood."""

from __future__ import annotations

import math

import jax
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import special

from mleppl.adapters.numpyro import exact_log_density
from mleppl.core.kernels import STIRLING_FROM, gamma_poisson_log_prob, lgamma_ratio

# every term below is computed in float64 from a handful of correctly rounded logs:
# the kernel is held to a few hundred ulps of the result
KERNEL_REL = 2e-13
CONCENTRATIONS = [1e-6, 1e-3, 0.3, 1.0, 7.9, 8.1, 50.0, 99.9, STIRLING_FROM, 100.1, 1e3, 1e4, 1e6, 1e8, 1e12]
MEANS = [1e-8, 1e-3, 0.5, 3.0, 100.0, 1e5, 1e10]
COUNTS = [0, 1, 2, 5, 10, 50, 200, 1000]


def _exact_logpmf(y: int, c: float, mu: float) -> float:
    """log NB(y; mean μ, concentration c) from sums of logs (no log-gamma, no cancellation):
    Σ_{k<y} log(c+k) − log y! − c·log1p(μ/c) + y·log(μ/(c+μ))."""
    lr = math.fsum(math.log(c + k) for k in range(y))
    lf = math.fsum(math.log(k) for k in range(1, y + 1))
    tail = y * (math.log(mu) - math.log(c + mu)) if y else 0.0
    return math.fsum([lr, -lf, -c * math.log1p(mu / c), tail])


def test_gamma_poisson_kernel_matches_the_exact_log_pmf():
    with jax.enable_x64(True):
        worst_kernel, worst_numpyro = 0.0, 0.0
        for c in CONCENTRATIONS:
            for mu in MEANS:
                ys = np.array(COUNTS, dtype=np.float64)
                ref = np.array([_exact_logpmf(int(y), c, mu) for y in ys])
                scale = np.maximum(1.0, np.abs(ref))
                got = np.asarray(gamma_poisson_log_prob(c, c / mu, ys))
                worst_kernel = max(worst_kernel, float(np.max(np.abs(got - ref) / scale)))
                theirs = np.asarray(dist.NegativeBinomial2(mu, c).log_prob(ys))
                worst_numpyro = max(worst_numpyro, float(np.nanmax(np.abs(theirs - ref) / scale)))
    assert worst_kernel <= KERNEL_REL, worst_kernel
    # the reason for the kernel: NumPyro's density (jax.scipy.special.betaln) is far off
    assert worst_numpyro > 1e3 * KERNEL_REL


@pytest.mark.parametrize("y", [0.0, 3.0, 100.0])
def test_lgamma_ratio_derivatives_are_digamma_and_trigamma_differences(y):
    # both branches (c below and above STIRLING_FROM) and the switch itself; the reference
    # differences lose ~eps·c/y of their own, so c stays where they are still exact
    c = np.array([0.5, 50.0, 99.99, STIRLING_FROM, 100.01, 1e3])
    with jax.enable_x64(True):
        d1 = np.asarray(jax.vmap(jax.grad(lgamma_ratio), in_axes=(0, None))(c, y))
        d2 = np.asarray(jax.vmap(jax.grad(jax.grad(lgamma_ratio)), in_axes=(0, None))(c, y))
    ref1 = special.digamma(c + y) - special.digamma(c)
    ref2 = special.polygamma(1, c + y) - special.polygamma(1, c)
    np.testing.assert_allclose(d1, ref1, rtol=1e-11, atol=0)
    np.testing.assert_allclose(d2, ref2, rtol=1e-11, atol=0)


def test_exact_log_density_swaps_gamma_poisson_under_wrappers_only():

    mu, c, ys = np.array([0.5, 3.0, 40.0]), 8.1, np.array([0.0, 2.0, 50.0])
    with jax.enable_x64(True):
        _check_swaps(mu, c, ys)


def _check_swaps(mu, c, ys):
    import numpyro.distributions as D

    cases = {
        "NegativeBinomial2": D.NegativeBinomial2(mu, c),
        "NegativeBinomialProbs": D.NegativeBinomialProbs(c, mu / (c + mu)),  # mean c·p/(1 − p)
        "GammaPoisson": D.GammaPoisson(c, c / mu),
        "expanded+masked": D.NegativeBinomial2(mu, c).expand([2, 3]).mask(np.array([True, False, True])),
        "zero-inflated": D.ZeroInflatedNegativeBinomial2(mu, c, gate=0.2),
    }
    ref = np.array([_exact_logpmf(int(y), c, float(m)) for y, m in zip(ys, mu)])
    for label, fn in cases.items():
        swapped = exact_log_density(fn)
        assert swapped is not fn and type(swapped).__name__ == type(fn).__name__, label
        got = np.asarray(swapped.log_prob(ys))
        if label == "expanded+masked":
            np.testing.assert_allclose(got[:, [0, 2]], np.broadcast_to(ref[[0, 2]], (2, 2)), rtol=KERNEL_REL)
            assert np.all(got[:, 1] == 0.0)
        elif label == "zero-inflated":
            lp = np.log(0.8) + ref
            lp[0] = np.logaddexp(np.log(0.2), lp[0])
            np.testing.assert_allclose(got, lp, rtol=KERNEL_REL)
        else:
            np.testing.assert_allclose(got, ref, rtol=KERNEL_REL, err_msg=label)
        # everything but the log-density is NumPyro's
        assert swapped.sample(jax.random.PRNGKey(0)).shape == fn.sample(jax.random.PRNGKey(0)).shape
        assert np.allclose(np.asarray(swapped.mean), np.asarray(fn.mean))
    # untouched: its own log-gamma form, and distributions without a Gamma–Poisson
    logits = D.NegativeBinomialLogits(c, np.log(mu / c))
    assert exact_log_density(logits) is logits
    pois = D.Poisson(mu)
    assert exact_log_density(pois) is pois
    # the caller's distribution object is not modified
    nb = cases["NegativeBinomial2"]
    assert type(nb) is D.NegativeBinomial2


def test_trigamma_and_the_log_gamma_derivatives_it_serves():
    from mleppl.core.kernels import _gammaln, trigamma

    x = np.concatenate([np.geomspace(1e-6, 1e6, 400), np.linspace(0.01, 20.0, 400)])
    with jax.enable_x64(True):
        got = np.asarray(trigamma(x))
        d1 = np.asarray(jax.vmap(jax.grad(_gammaln))(x))
        d2 = np.asarray(jax.vmap(jax.grad(jax.grad(_gammaln)))(x))
        d3 = np.asarray(jax.vmap(jax.grad(jax.grad(jax.grad(_gammaln))))(x))
    np.testing.assert_allclose(got, special.polygamma(1, x), rtol=1e-12, atol=0)
    np.testing.assert_allclose(d1, special.digamma(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(d2, special.polygamma(1, x), rtol=1e-12, atol=0)
    np.testing.assert_allclose(d3, special.polygamma(2, x), rtol=1e-9, atol=0)  # AD of the series
