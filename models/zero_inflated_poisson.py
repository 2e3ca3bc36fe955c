"""Zero-inflated Poisson regression: a point mass at zero mixed with a Poisson.

Likelihood
----------
.. math:: P(y_i = 0) = \\pi_i + (1-\\pi_i)e^{-\\mu_i}, \\qquad
   P(y_i = k) = (1-\\pi_i)\\frac{\\mu_i^k e^{-\\mu_i}}{k!}\\ (k \\ge 1),

with :math:`\\log\\mu_i = x_i^\\top\\beta` and :math:`\\operatorname{logit}\\pi_i = w_i^\\top\\gamma`
(the "structural zeros"). The zero class is marginalized in closed form, so
there is no discrete latent site.

Data
----
RAND Health Insurance Experiment sample (public domain; see
``negative_binomial``): outpatient doctor visits, the same count covariates;
the zero-inflation part on an intercept, the individual-deductible indicator
and the log participation incentive. About a third of the sample has no visit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, design, read_csv

COVARIATES = ["lncoins", "idp", "lpi", "fmde", "physlm", "disea", "hlthg", "hlthf", "hlthp"]
INFLATION = ["idp", "lpi"]
TRUE = {"beta": np.array([1.0, 0.4, -0.3]), "gamma": np.array([-1.0, 0.8])}


def model(X, W, y=None):
    """y ~ ZIP(exp(X β), logit⁻¹(W γ)); Normal(0, 5) priors for the Bayesian fit."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 5.0).expand([X.shape[1]]).to_event(1))
    gamma = numpyro.sample("gamma", dist.Normal(0.0, 5.0).expand([W.shape[1]]).to_event(1))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample(
            "y", dist.ZeroInflatedDistribution(dist.Poisson(jnp.exp(X @ beta)), gate_logits=W @ gamma), obs=y
        )


def load() -> Example:
    df = read_csv("randhie_sample.csv")
    return Example(
        name="zero_inflated_poisson",
        args=(design(df, COVARIATES), design(df, INFLATION)),
        kwargs={"y": df["mdvis"].to_numpy()},
        description="RAND HIE doctor visits (sample of 2,500), zero-inflated Poisson",
        labels={"beta": ["const"] + COVARIATES, "gamma": ["const"] + INFLATION},
        reference="statsmodels ZeroInflatedPoisson",
    )


def simulate(rng_key, n: int):
    k1, k2, k3, k4 = jax.random.split(rng_key, 4)
    X = np.column_stack([np.ones(n), np.asarray(jax.random.normal(k1, (n, 2)))])
    W = np.column_stack([np.ones(n), np.asarray(jax.random.normal(k2, (n,)))])
    pi = 1.0 / (1.0 + np.exp(-(W @ TRUE["gamma"])))
    counts = np.asarray(jax.random.poisson(k3, np.exp(X @ TRUE["beta"])))
    zero = np.asarray(jax.random.uniform(k4, (n,))) < pi
    y = np.where(zero, 0, counts).astype(float)
    return (X, W), {"y": y}
