"""Softmax (multinomial logistic) regression: maximum likelihood is minimum categorical cross-entropy.

Likelihood
----------
.. math:: P(y_i = k \\mid x_i) = \\frac{\\exp(x_i^\\top\\beta_k)}{\\sum_{j=0}^{K-1}\\exp(x_i^\\top\\beta_j)},
   \\qquad \\beta_0 \\equiv 0, \\qquad
   -\\log L = -\\sum_i \\log P(y_i \\mid x_i),

the categorical cross-entropy summed over observations. Class 0 is the
reference: only differences of the class scores are identified, so its
coefficients are fixed at zero and ``beta[:, k-1]`` are the log-odds of class
``k`` against class 0.

Data
----
American National Election Studies 1996 (public domain, as shipped with
statsmodels): party identification of 944 respondents collapsed to three
classes (0 Democrat, 1 Independent, 2 Republican) on left–right self-placement
(1–7), age, education (1–7) and income (1–24).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, design, read_csv

COVARIATES = ["selfLR", "age", "educ", "income"]
CLASSES = ["Democrat", "Independent", "Republican"]
TRUE = {"beta": np.array([[-0.5, 0.3], [1.0, -0.5], [0.5, 0.8]])}


def model(X, y=None, n_classes: int = 3):
    """y ~ Categorical(softmax([0, X β])); Normal(0, 5) priors for the Bayesian fit."""
    p = X.shape[1]
    beta = numpyro.sample("beta", dist.Normal(0.0, 5.0).expand([p, n_classes - 1]).to_event(2))
    scores = X @ beta
    logits = jnp.concatenate([jnp.zeros((X.shape[0], 1)), scores], axis=1)
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Categorical(logits=logits), obs=y)


def load() -> Example:
    df = read_csv("anes96.csv")
    X = design(df, COVARIATES)
    pid = df["PID"].to_numpy()
    y = np.where(pid <= 2, 0, np.where(pid == 3, 1, 2))
    labels = [f"{c}:{k}" for c in ["const"] + COVARIATES for k in CLASSES[1:]]
    return Example(
        name="softmax_regression",
        args=(X,),
        kwargs={"y": y},
        description="ANES 1996 party identification (Dem / Ind / Rep), categorical cross-entropy",
        labels={"beta": labels},
        reference="statsmodels MNLogit",
    )


def simulate(rng_key, n: int):
    k1, k2 = jax.random.split(rng_key)
    X = np.column_stack([np.ones(n), np.asarray(jax.random.normal(k1, (n, 2)))])
    logits = np.column_stack([np.zeros(n), X @ TRUE["beta"]])
    y = np.asarray(jax.random.categorical(k2, logits))
    return (X,), {"y": y}
