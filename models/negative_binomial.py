"""Negative binomial (NB2) regression for over-dispersed counts.

Likelihood
----------
.. math:: y_i \\sim \\mathrm{NB}(\\mu_i, \\alpha), \\quad \\mu_i = e^{x_i^\\top\\beta}, \\quad
   \\operatorname{Var} y_i = \\mu_i + \\alpha\\mu_i^2,

.. math:: \\log L = \\sum_i \\Big[\\log\\Gamma(y_i + \\alpha^{-1}) - \\log\\Gamma(\\alpha^{-1})
   - \\log y_i! + \\alpha^{-1}\\log\\frac{1}{1+\\alpha\\mu_i}
   + y_i\\log\\frac{\\alpha\\mu_i}{1+\\alpha\\mu_i}\\Big].

NumPyro's ``NegativeBinomial2(mean, concentration)`` is this distribution with
``concentration = 1/α``; α (the dispersion, statsmodels' ``alpha``) is the
free parameter. α → 0 is the Poisson limit.

Data
----
RAND Health Insurance Experiment (public domain; as shipped with statsmodels,
see Cameron & Trivedi 2005): a random sample of 2,500 of the 20,190
person-years (seed in ``data/SOURCES.md``). Outpatient visits to a doctor
(``mdvis``) on log coinsurance rate, individual-deductible plan, log
participation incentive, log max deductible, physical limitation, chronic
diseases and self-rated health.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, design, read_csv

COVARIATES = ["lncoins", "idp", "lpi", "fmde", "physlm", "disea", "hlthg", "hlthf", "hlthp"]
TRUE = {"beta": np.array([0.8, 0.5, -0.4]), "alpha": 0.7}


def model(X, y=None):
    """y ~ NB2(exp(X β), α); Normal(0, 5) and Exponential(1) priors for the Bayesian fit."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 5.0).expand([X.shape[1]]).to_event(1))
    alpha = numpyro.sample("alpha", dist.Exponential(1.0))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.NegativeBinomial2(jnp.exp(X @ beta), 1.0 / alpha), obs=y)


def load() -> Example:
    df = read_csv("randhie_sample.csv")
    return Example(
        name="negative_binomial",
        args=(design(df, COVARIATES),),
        kwargs={"y": df["mdvis"].to_numpy()},
        description="RAND HIE doctor visits (sample of 2,500), NB2 with estimated dispersion α",
        labels={"beta": ["const"] + COVARIATES},
        reference="statsmodels NegativeBinomial (nb2)",
    )


def simulate(rng_key, n: int):
    k1, k2, k3 = jax.random.split(rng_key, 3)
    X = np.column_stack([np.ones(n), np.asarray(jax.random.normal(k1, (n, 2)))])
    mu = np.exp(X @ TRUE["beta"])
    a = TRUE["alpha"]
    lam = np.asarray(jax.random.gamma(k2, 1.0 / a, (n,))) * a * mu  # Gamma(1/α, scale αμ)
    y = np.asarray(jax.random.poisson(k3, lam)).astype(float)
    return (X,), {"y": y}
