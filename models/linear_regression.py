"""Gaussian linear regression: maximum likelihood is least squares.

Likelihood
----------
.. math:: y_i \\sim \\mathcal N(x_i^\\top \\beta, \\sigma^2), \\qquad
   -\\log L = \\frac{n}{2}\\log(2\\pi\\sigma^2) + \\frac{1}{2\\sigma^2}\\sum_i (y_i - x_i^\\top\\beta)^2 .

For fixed σ the negative log-likelihood is n/(2σ²) times the mean squared
error plus a constant, so β̂ is the ordinary-least-squares solution and
σ̂² = RSS/n (the MLE divides by n, not n − p).

Data
----
Longley (1967) US macroeconomic series 1947–1962, public domain: total
employment on the GNP deflator, GNP, unemployment, armed forces, population
and year. The raw covariates differ in scale by 10⁵ and are nearly collinear,
the classic test of numerical accuracy (NIST StRD certified values).
"""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, read_csv

COVARIATES = ["GNPDEFL", "GNP", "UNEMP", "ARMED", "POP", "YEAR"]
TRUE = {"beta": np.array([1.0, 2.0, -0.5]), "sigma": 0.7}


def model(X, y=None):
    """y ~ Normal(X β, σ); weakly informative priors for the Bayesian fit."""
    p = X.shape[1]
    beta = numpyro.sample("beta", dist.Normal(0.0, 1e6).expand([p]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(1e3))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def load() -> Example:
    df = read_csv("longley.csv")
    X = np.column_stack([np.ones(len(df))] + [df[c].to_numpy(float) for c in COVARIATES])
    y = df["TOTEMP"].to_numpy(float)
    return Example(
        name="linear_regression",
        args=(X,),
        kwargs={"y": y},
        description="Longley employment data, OLS via maximum likelihood (raw, ill-conditioned covariates)",
        labels={"beta": ["const"] + COVARIATES},
    )


def simulate(rng_key, n: int):
    k1, k2 = jax.random.split(rng_key)
    X = np.column_stack([np.ones(n), np.asarray(jax.random.normal(k1, (n, 2)))])
    y = X @ TRUE["beta"] + TRUE["sigma"] * np.asarray(jax.random.normal(k2, (n,)))
    return (X,), {"y": y}
