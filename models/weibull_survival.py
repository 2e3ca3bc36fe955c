"""Weibull accelerated-failure-time regression with right censoring.

Likelihood
----------
.. math:: T_i \\sim \\mathrm{Weibull}(k, \\lambda_i), \\quad \\log\\lambda_i = x_i^\\top\\beta, \\quad
   S(t) = e^{-(t/\\lambda_i)^k},

.. math:: \\log L = \\sum_{i:\\,\\delta_i = 1}\\log f(t_i) + \\sum_{i:\\,\\delta_i = 0}\\log S(t_i)
   = \\sum_i\\Big[\\delta_i\\big(\\log k - \\log\\lambda_i + (k-1)\\log\\tfrac{t_i}{\\lambda_i}\\big)
   - (t_i/\\lambda_i)^k\\Big],

with δ the event indicator. A censored time contributes the probability of
surviving past it. Written with NumPyro's ``RightCensoredDistribution``;
``exp(β_j)`` is the factor by which covariate j stretches the time to event.

Data
----
Rossi, Berk & Lenihan (1980) recidivism data: 432 men released from Maryland
state prisons followed for 52 weeks; week of first re-arrest, right-censored
at 52 weeks for the 318 not re-arrested. Covariates: financial aid (the
randomized treatment), age, race, work experience, marital status, parole,
number of prior convictions. Copy as shipped with lifelines (MIT licence).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, design, read_csv

COVARIATES = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
TRUE = {"beta": np.array([3.0, 0.4, -0.3]), "shape": 1.4}


def model(X, censored, y=None):
    """T ~ Weibull(k, exp(X β)), right-censored where ``censored``; weak priors for NUTS."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([X.shape[1]]).to_event(1))
    shape = numpyro.sample("shape", dist.Gamma(2.0, 1.0))
    base = dist.Weibull(jnp.exp(X @ beta), shape)
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.RightCensoredDistribution(base, censored=censored), obs=y)


def load() -> Example:
    df = read_csv("rossi.csv")
    return Example(
        name="weibull_survival",
        args=(design(df, COVARIATES), df["arrest"].to_numpy() == 0),
        kwargs={"y": df["week"].to_numpy(float)},
        description="Rossi recidivism: weeks to re-arrest, censored at 52, Weibull AFT",
        labels={"beta": ["const"] + COVARIATES},
        reference="scipy.optimize on an independent censored Weibull NLL",
    )


def simulate(rng_key, n: int):
    k1, k2, k3 = jax.random.split(rng_key, 3)
    X = np.column_stack([np.ones(n), np.asarray(jax.random.normal(k1, (n, 2)))])
    lam = np.exp(X @ TRUE["beta"])
    t = lam * np.asarray(jax.random.weibull_min(k2, 1.0, TRUE["shape"], (n,)))
    c = np.asarray(jax.random.uniform(k3, (n,), minval=5.0, maxval=60.0))  # random censoring times
    return (X, t > c), {"y": np.minimum(t, c)}
