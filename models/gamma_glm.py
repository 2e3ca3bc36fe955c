"""Gamma regression (GLM with log link) for a positive, right-skewed response.

Likelihood
----------
.. math:: y_i \\sim \\mathrm{Gamma}(\\nu, \\nu/\\mu_i), \\quad \\log\\mu_i = x_i^\\top\\beta,
   \\qquad E y_i = \\mu_i, \\quad \\operatorname{Var} y_i = \\mu_i^2/\\nu,

.. math:: -\\log L = \\sum_i\\Big[\\log\\Gamma(\\nu) - \\nu\\log\\frac{\\nu}{\\mu_i}
   - (\\nu-1)\\log y_i + \\frac{\\nu y_i}{\\mu_i}\\Big].

The shape ν is estimated by maximum likelihood (statsmodels' GLM instead
estimates the dispersion 1/ν by Pearson's χ²/(n − p); the coefficients agree,
the dispersion does not).

Data
----
Engel (1857) food expenditure of 235 Belgian working-class households
(public domain; as shipped with statsmodels, from Koenker & Bassett 1982):
annual food expenditure on log household income (centred at its mean). The
coefficient of log income is the income elasticity of food spending (Engel's law: below 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, read_csv

TRUE = {"beta": np.array([6.0, 0.8]), "shape": 12.0}


def model(X, y=None):
    """y ~ Gamma(ν, ν / exp(X β)); Normal(0, 10) and Gamma(2, 0.1) priors for the Bayesian fit."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([X.shape[1]]).to_event(1))
    shape = numpyro.sample("shape", dist.Gamma(2.0, 0.1))
    mu = jnp.exp(X @ beta)
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Gamma(shape, shape / mu), obs=y)


def load() -> Example:
    df = read_csv("engel.csv")
    logx = np.log(df["income"].to_numpy(float))
    X = np.column_stack([np.ones(len(df)), logx - logx.mean()])
    return Example(
        name="gamma_glm",
        args=(X,),
        kwargs={"y": df["foodexp"].to_numpy(float)},
        description="Engel 1857 food expenditure on log income, Gamma GLM (log link)",
        labels={"beta": ["const", "log_income_c"]},
        reference="scipy.optimize on an independent NLL; statsmodels GLM Gamma for β",
    )


def simulate(rng_key, n: int):
    k1, k2 = jax.random.split(rng_key)
    X = np.column_stack([np.ones(n), np.asarray(jax.random.normal(k1, (n,)))])
    mu = np.exp(X @ TRUE["beta"])
    nu = TRUE["shape"]
    y = np.asarray(jax.random.gamma(k2, nu, (n,))) * mu / nu
    return (X,), {"y": y}
