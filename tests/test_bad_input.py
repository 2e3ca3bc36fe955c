"""Bad input gets a clear error naming the site or argument; nothing is mutated."""

from __future__ import annotations

import re
import warnings

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest

import mleppl
from mleppl import ConvergenceWarning, HessianWarning, MLEWarning, fit_mle


def reg(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


@pytest.fixture
def data(rng):
    X = np.column_stack([np.ones(20), rng.normal(size=20)])
    return X, X @ [1.0, 2.0] + rng.normal(size=20)


def test_no_observed_site(data):
    X, _ = data
    with pytest.raises(
        ValueError, match=r"no observed site.*expected at least one.*\['beta', 'sigma', 'y'\].*left out"
    ):
        fit_mle(reg, X)  # y not passed


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_observed_data_names_the_site(data, bad):
    X, y = data
    y = y.copy()
    y[3] = bad
    with pytest.raises(ValueError, match=r"observed site 'y': expected finite data, got 1 NaN/inf"):
        fit_mle(reg, X, y=y)


def test_nonfinite_covariate_names_the_argument(data):
    X, y = data
    X = X.copy()
    X[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite values in argument\(s\) 'X' \(1 NaN/inf\)"):
        fit_mle(reg, X, y=y)


def test_nonfinite_covariate_that_does_not_reach_the_likelihood_is_fine(data):
    X, y = data

    def model(X, unused, y=None):
        reg(X, y)

    res = fit_mle(model, X, np.array([np.nan, 1.0]), y=y)
    assert res.converged


def test_masked_nonfinite_observation_is_allowed(data):
    X, y = data
    y = y.copy()
    y[0] = np.nan
    mask = np.ones(20, bool)
    mask[0] = False

    def model(X, mask, y=None):
        beta = numpyro.sample("beta", dist.Normal(0, 10).expand([2]).to_event(1))
        with numpyro.plate("obs", X.shape[0]):
            numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y, obs_mask=mask)

    res = fit_mle(model, X, mask, y=y)
    assert res.nobs == 19
    b, *_ = np.linalg.lstsq(X[1:], y[1:], rcond=None)
    # least squares on the unmasked rows; fit tolerance leaves ~1e-9 relative
    np.testing.assert_allclose(res.params["beta"], b, rtol=1e-8)


def test_discrete_latent_site_is_summed_out_and_a_latent_count_is_refused():
    def mixture(y=None):
        z = numpyro.sample("z", dist.Bernoulli(0.5))
        numpyro.sample("y", dist.Normal(z * 3.0, 1.0), obs=y)

    res = fit_mle(mixture, y=np.array(1.0))
    dens = 0.5 * np.exp(-0.5 * 1.0**2) + 0.5 * np.exp(-0.5 * 2.0**2)
    assert res.n_params == 0 and abs(res.loglik - np.log(dens / np.sqrt(2 * np.pi))) < 1e-12

    def latent_count(y=None):
        k = numpyro.sample("k", dist.Poisson(2.0))
        numpyro.sample("y", dist.Normal(k, 1.0), obs=y)

    with pytest.raises(
        ValueError, match=r"site 'k' is a discrete latent variable \(Poisson\) without a finite"
    ):
        fit_mle(latent_count, y=np.array(1.0))


def test_data_shape_disagrees_with_plate(data):
    X, y = data

    def model(X, y=None):
        beta = numpyro.sample("beta", dist.Normal(0, 10).expand([2]).to_event(1))
        with numpyro.plate("obs", X.shape[0]):
            numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)

    with pytest.raises(ValueError, match=re.escape("observed site 'y': expected data of shape (20,)")):
        fit_mle(model, X, y=y[:, None])  # (20, 1) would silently broadcast to (20, 20)


def test_init_unknown_site_and_outside_support(data):
    X, y = data
    with pytest.raises(ValueError, match=r"init: unknown site 'gamma'; expected one of the free sites"):
        fit_mle(reg, X, y=y, init={"gamma": 1.0})
    with pytest.raises(ValueError, match=r"init\['sigma'\]: expected a value inside the support"):
        fit_mle(reg, X, y=y, init={"sigma": -1.0})
    with pytest.raises(ValueError, match=r"init\['beta'\]: expected shape \(2,\)"):
        fit_mle(reg, X, y=y, init={"beta": [1.0, 2.0, 3.0]})


def test_init_is_used(data):
    X, y = data
    res = fit_mle(reg, X, y=y, init={"beta": [1.0, 2.0], "sigma": 1.0})
    assert res.converged


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"method": "bfgs"}, r"method: expected one of"),
        ({"max_steps": 0}, r"max_steps: expected a positive integer"),
        ({"tol": -1.0}, r"tol: expected a positive finite number"),
    ],
)
def test_bad_options(data, kwargs, pattern):
    X, y = data
    with pytest.raises(ValueError, match=pattern):
        fit_mle(reg, X, y=y, **kwargs)


def test_object_arrays_and_pandas(data):
    X, y = data
    with pytest.raises(
        TypeError, match=r"argument 'X': expected a numeric or boolean array, got dtype object"
    ):
        fit_mle(reg, X.astype(object), y=y)
    frame = pd.DataFrame(X, columns=["const", "x"])
    res_pd = fit_mle(reg, frame, y=pd.Series(y))
    res_np = fit_mle(reg, X, y=y)
    # the same numbers through the same program: identical up to rounding
    np.testing.assert_allclose(res_pd.params["beta"], res_np.params["beta"], rtol=1e-12)


def test_integer_and_bool_data_are_accepted(rng):
    counts = rng.poisson(3.0, size=50)

    def model(y=None):
        lam = numpyro.sample("lam", dist.Gamma(1.0, 0.1))
        with numpyro.plate("obs", 50):
            numpyro.sample("y", dist.Poisson(lam), obs=y)

    res = fit_mle(model, y=counts)
    # closed form (the mean); fit tolerance leaves ~1e-9 relative
    np.testing.assert_allclose(res.params["lam"], counts.mean(), rtol=1e-8)


def test_model_that_raises_is_reported_with_its_error(data):
    X, y = data

    def broken(X, y=None):
        raise KeyError("boom")

    with pytest.raises(KeyError, match=r"the model raised KeyError while being traced"):
        fit_mle(broken, X, y=y)
    with pytest.raises(TypeError, match=r"unexpected keyword"):
        fit_mle(reg, X, y=y, colour="red")  # unknown option names go to the model


def test_singular_hessian_warns_and_gives_nan_se(rng):
    """Two identical covariate columns: β1 + β2 is identified, β1 and β2 are not."""
    x = rng.normal(size=50)
    X = np.column_stack([np.ones(50), x, x])
    y = 1.0 + 2.0 * x + rng.normal(size=50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fit_mle(reg, X, y=y)
    hess = [w for w in caught if issubclass(w.category, HessianWarning)]
    assert hess and re.search(r"not positive definite.*\['beta'\]", str(hess[0].message))
    assert np.isnan(res.se["beta"][1]) and np.isnan(res.se["beta"][2])
    assert np.isfinite(res.se["sigma"])


def test_nonconvergence_is_reported(data):
    X, y = data
    with pytest.warns(mleppl.MLEWarning) as record:
        res = fit_mle(reg, X, y=y, max_steps=1)
    assert any(
        issubclass(w.category, ConvergenceWarning)
        and re.search(r"fit did not converge: maximum number of steps", str(w.message))
        for w in record
    )
    assert not res.converged and "maximum number of steps" in res.message


def test_all_warnings_are_mlewarnings(data):
    X, y = data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_mle(reg, X, y=y, max_steps=1)
    assert caught and all(issubclass(w.category, MLEWarning) for w in caught)


def test_jax_arrays_are_accepted(data):
    X, y = data
    # jnp.asarray rounds to float32 while x64 is off: accepted, with a warning naming the argument
    with pytest.warns(mleppl.PrecisionWarning) as record:
        res = fit_mle(reg, jnp.asarray(X), y=jnp.asarray(y))
    assert {str(w.message).split(":")[0] for w in record} <= {"argument 'X'", "argument 'y'"}
    assert res.converged
