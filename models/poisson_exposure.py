"""Poisson regression of rates, with exposure (person-years) as an offset.

Likelihood
----------
.. math:: y_i \\sim \\mathrm{Poisson}(t_i\\, e^{x_i^\\top\\beta}), \\qquad
   -\\log L = \\sum_i \\big[\\mu_i - y_i\\log\\mu_i + \\log y_i!\\big],
   \\quad \\mu_i = t_i e^{x_i^\\top\\beta},

so :math:`\\log t_i` enters the linear predictor with coefficient fixed at 1
and :math:`e^{\\beta}` are rate ratios.

Data
----
Coronary deaths among British male doctors by age group and smoking, with
person-years at risk (Doll & Hill 1966, tabulated in Breslow & Day 1987,
*Statistical Methods in Cancer Research* II, and Dobson & Barnett,
*An Introduction to Generalized Linear Models*, Table 9.1): 10 aggregate
counts. The model is Dobson's: smoking, age category (1–5), its square, and a
smoking × age interaction. Published estimates: −10.79, 1.441, 2.376,
−0.198, −0.308.
"""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, read_csv

TERMS = ["const", "smoker", "agecat", "agecat^2", "smoker:agecat"]
TRUE = {"beta": np.array([-6.0, 0.5, 0.8, -0.2])}


def model(X, exposure, y=None):
    """y ~ Poisson(exposure · exp(X β)); Normal(0, 10) priors for the Bayesian fit."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Poisson(exposure * jax.numpy.exp(X @ beta)), obs=y)


def load() -> Example:
    df = read_csv("british_doctors.csv")
    agecat = (df["age_group"].str[:2].astype(int).to_numpy() - 25) // 10
    smoker = df["smoker"].to_numpy(float)
    X = np.column_stack([np.ones(len(df)), smoker, agecat, agecat**2, smoker * agecat]).astype(float)
    return Example(
        name="poisson_exposure",
        args=(X, df["person_years"].to_numpy(float)),
        kwargs={"y": df["deaths"].to_numpy()},
        description="British doctors: coronary deaths per person-year by age and smoking",
        labels={"beta": TERMS},
        reference="statsmodels GLM Poisson with exposure; Dobson & Barnett Table 9.2",
    )


def simulate(rng_key, n: int):
    k1, k2, k3, k4 = jax.random.split(rng_key, 4)
    X = np.column_stack(
        [
            np.ones(n),
            np.asarray(jax.random.normal(k1, (n, 2))),
            np.asarray(jax.random.bernoulli(k4, 0.5, (n,))),
        ]
    )
    exposure = np.asarray(jax.random.uniform(k2, (n,), minval=100.0, maxval=1000.0))
    y = np.asarray(jax.random.poisson(k3, exposure * np.exp(X @ TRUE["beta"]))).astype(float)
    return (X, exposure), {"y": y}
