"""Logistic regression: maximum likelihood is minimum binary cross-entropy.

Likelihood
----------
.. math:: y_i \\sim \\mathrm{Bernoulli}(\\sigma(x_i^\\top\\beta)), \\qquad
   -\\log L = -\\sum_i \\big[y_i \\log p_i + (1-y_i)\\log(1-p_i)\\big],

the binary cross-entropy summed over observations.

Data
----
Space Shuttle O-ring data (Dalal, Fowlkes & Hoadley 1989; NASA, public
domain): for the 23 flights before the Challenger accident, launch temperature
(°F) and whether any field joint O-ring showed thermal distress. The published
maximum-likelihood fit is logit p = 15.043 − 0.2322·temperature
(standard errors 7.379 and 0.1082).
"""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, read_csv

TRUE = {"beta": np.array([-0.5, 1.0, -1.5])}


def model(X, y=None):
    """y ~ Bernoulli(logit⁻¹(X β)); Normal(0, 10) priors for the Bayesian fit."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ beta), obs=y)


def load() -> Example:
    df = read_csv("challenger.csv")
    X = np.column_stack([np.ones(len(df)), df["temperature_f"].to_numpy(float)])
    y = df["distress"].to_numpy(float)
    return Example(
        name="logistic_regression",
        args=(X,),
        kwargs={"y": y},
        description="Challenger O-ring distress vs launch temperature (binary cross-entropy)",
        labels={"beta": ["const", "temperature_f"]},
    )


def simulate(rng_key, n: int):
    k1, k2 = jax.random.split(rng_key)
    X = np.column_stack([np.ones(n), np.asarray(jax.random.normal(k1, (n, 2)))])
    p = 1.0 / (1.0 + np.exp(-(X @ TRUE["beta"])))
    y = (np.asarray(jax.random.uniform(k2, (n,))) < p).astype(float)
    return (X,), {"y": y}
