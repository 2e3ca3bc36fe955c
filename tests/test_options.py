"""One options record (mleppl.core.options): fit_mle, fit_many and bootstrap refuse the same bad
options with the same words, before anything is traced or compiled."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import mleppl
from mleppl.core.options import FitOptions, fit_options


def model(x, y=None):
    mu = numpyro.sample("mu", dist.Normal(0, 10))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


X = np.zeros(5)
Y = np.arange(5.0)
Y_MANY = np.arange(10.0).reshape(2, 5)


@pytest.mark.parametrize(
    "option, match",
    [
        ({"method": "newtn"}, r"method: expected one of \('auto', 'newton'"),
        ({"tol": -1.0}, "tol: expected a positive finite number, got -1.0"),
        ({"tol": True}, "tol: expected a positive finite number, got True"),
        ({"max_steps": 0}, "max_steps: expected a positive integer or None, got 0"),
        ({"max_steps": 2.5}, "max_steps: expected a positive integer or None, got 2.5"),
    ],
)
def test_fit_mle_and_fit_many_refuse_the_same_options_alike(option, match):
    with pytest.raises(ValueError, match=match):
        mleppl.fit_mle(model, X, y=Y, **option)
    with pytest.raises(ValueError, match=match):
        mleppl.fit_many(model, X, y=Y_MANY, **option)


def test_the_record_holds_the_validated_values():
    assert fit_options(method="lbfgs", max_steps=np.int64(7), tol=1) == FitOptions("lbfgs", 7, 1.0, 1)
    assert isinstance(fit_options(max_steps=np.int64(7)).max_steps, int)


def test_bootstrap_and_predictive_counts_are_checked_with_the_same_words():
    res = mleppl.fit_mle(model, X, y=Y)
    with pytest.raises(ValueError, match="n_boot: expected a positive integer, got 0"):
        mleppl.bootstrap(res, 0)
    with pytest.raises(ValueError, match="num_samples: expected a positive integer, got -3"):
        res.to_datatree(num_samples=-3)
