"""Probit regression: a binary model with the standard normal CDF as inverse link.

Likelihood
----------
.. math:: y_i \\sim \\mathrm{Bernoulli}(\\Phi(x_i^\\top\\beta)), \\qquad
   -\\log L = -\\sum_i \\big[y_i \\log\\Phi(\\eta_i) + (1-y_i)\\log\\Phi(-\\eta_i)\\big].

The Bernoulli is written with logits ``log Φ(η) − log Φ(−η)`` (``log_ndtr``),
which keeps both tails accurate where ``Φ(η)`` rounds to 0 or 1.

Data
----
American National Election Studies 1996 (public domain, as shipped with
statsmodels): 944 respondents' 1996 presidential vote (1 = Dole, 0 = Clinton)
on left–right self-placement (1–7), age, education (1–7) and income (1–24).
"""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import log_ndtr

from ._common import Example, design, read_csv

COVARIATES = ["selfLR", "age", "educ", "income"]
TRUE = {"beta": np.array([0.3, 0.8, -0.6])}


def model(X, y=None):
    """y ~ Bernoulli(Φ(X β)); Normal(0, 5) priors for the Bayesian fit."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 5.0).expand([X.shape[1]]).to_event(1))
    eta = X @ beta
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=log_ndtr(eta) - log_ndtr(-eta)), obs=y)


def load() -> Example:
    df = read_csv("anes96.csv")
    return Example(
        name="probit_regression",
        args=(design(df, COVARIATES),),
        kwargs={"y": df["vote"].to_numpy(float)},
        description="ANES 1996 presidential vote (Dole vs Clinton), probit link",
        labels={"beta": ["const"] + COVARIATES},
        reference="statsmodels Probit",
    )


def simulate(rng_key, n: int):
    from scipy.special import ndtr

    k1, k2 = jax.random.split(rng_key)
    X = np.column_stack([np.ones(n), np.asarray(jax.random.normal(k1, (n, 2)))])
    y = (np.asarray(jax.random.uniform(k2, (n,))) < ndtr(X @ TRUE["beta"])).astype(float)
    return (X,), {"y": y}
