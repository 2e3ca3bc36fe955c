"""Robust linear regression with Student-t errors (degrees of freedom estimated).

Likelihood
----------
.. math:: y_i = x_i^\\top\\beta + \\sigma\\varepsilon_i, \\quad \\varepsilon_i \\sim t_\\nu, \\qquad
   -\\log L = \\sum_i\\Big[-\\log\\frac{\\Gamma(\\frac{\\nu+1}{2})}{\\Gamma(\\frac{\\nu}{2})\\sqrt{\\nu\\pi}\\,\\sigma}
   + \\frac{\\nu+1}{2}\\log\\Big(1 + \\frac{r_i^2}{\\nu\\sigma^2}\\Big)\\Big],
   \\quad r_i = y_i - x_i^\\top\\beta .

Heavy tails down-weight outliers: the score of an observation is bounded in
its residual, unlike least squares (Lange, Little & Taylor 1989).

Data
----
Brownlee's (1965) stack-loss plant data, 21 days (public domain; as shipped
with statsmodels): stack loss of ammonia on air flow, cooling-water
temperature and acid concentration, the classic robust-regression example
(observations 1, 3, 4 and 21 are the usual suspects).
"""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, design, read_csv

COVARIATES = ["AIRFLOW", "WATERTEMP", "ACIDCONC"]
TRUE = {"beta": np.array([1.0, 2.0, -1.0]), "sigma": 0.5, "nu": 4.0}


def model(X, y=None):
    """y ~ StudentT(ν, X β, σ); Normal, HalfCauchy and Gamma(2, 0.1) priors for the Bayesian fit."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 100.0).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(10.0))
    nu = numpyro.sample("nu", dist.Gamma(2.0, 0.1))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.StudentT(nu, X @ beta, sigma), obs=y)


def load() -> Example:
    df = read_csv("stackloss.csv")
    return Example(
        name="robust_regression",
        args=(design(df, COVARIATES),),
        kwargs={"y": df["STACKLOSS"].to_numpy(float)},
        description="Brownlee stack-loss data, Student-t errors with estimated ν",
        labels={"beta": ["const"] + COVARIATES},
        reference="scipy.optimize on an independent NLL (scipy.stats.t)",
    )


def simulate(rng_key, n: int):
    k1, k2 = jax.random.split(rng_key)
    X = np.column_stack([np.ones(n), np.asarray(jax.random.normal(k1, (n, 2)))])
    eps = np.asarray(jax.random.t(k2, TRUE["nu"], (n,)))
    return (X,), {"y": X @ TRUE["beta"] + TRUE["sigma"] * eps}
