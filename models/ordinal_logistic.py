"""Ordinal logistic regression (proportional odds) with ordered cut-points.

Likelihood
----------
.. math:: P(y_i \\le k \\mid x_i) = \\sigma(c_k - x_i^\\top\\beta), \\quad
   c_0 < c_1 < \\dots < c_{K-2}, \\qquad
   -\\log L = -\\sum_i \\log\\big[\\sigma(c_{y_i} - \\eta_i) - \\sigma(c_{y_i-1} - \\eta_i)\\big]

with :math:`c_{-1} = -\\infty`, :math:`c_{K-1} = +\\infty`. There is no
intercept: it is absorbed by the cut-points. The cut-points live on NumPyro's
``ordered_vector`` support, so the fit respects their order by construction.

Data
----
American National Election Studies 1996 (public domain, as shipped with
statsmodels): 944 respondents' liberal–conservative self-placement on a
7-point scale (1 extremely liberal … 7 extremely conservative; coded 0–6) on
party identification (0 strong Democrat … 6 strong Republican), age,
education and income.
"""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, design, read_csv

COVARIATES = ["PID", "age", "educ", "income"]
TRUE = {"beta": np.array([1.0, -0.5]), "cutpoints": np.array([-1.5, -0.3, 0.4, 2.0])}


def model(X, y=None, n_levels: int = 7):
    """y ~ OrderedLogistic(X β, c); Normal(0, 5) priors, cut-points ordered."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 5.0).expand([X.shape[1]]).to_event(1))
    cut = numpyro.sample(
        "cutpoints",
        dist.TransformedDistribution(
            dist.Normal(0.0, 5.0).expand([n_levels - 1]).to_event(1), dist.transforms.OrderedTransform()
        ),
    )
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.OrderedLogistic(X @ beta, cut), obs=y)


def load() -> Example:
    df = read_csv("anes96.csv")
    return Example(
        name="ordinal_logistic",
        args=(design(df, COVARIATES, const=False),),
        kwargs={"y": df["selfLR"].to_numpy() - 1},
        description="ANES 1996 liberal–conservative self-placement (7 levels), proportional odds",
        labels={"beta": COVARIATES, "cutpoints": [f"{k}|{k + 1}" for k in range(1, 7)]},
        reference="statsmodels OrderedModel (logit)",
    )


def simulate(rng_key, n: int):
    k1, k2 = jax.random.split(rng_key)
    X = np.asarray(jax.random.normal(k1, (n, 2)))
    cut = TRUE["cutpoints"]
    eta = X @ TRUE["beta"]
    cdf = 1.0 / (1.0 + np.exp(-(cut[None, :] - eta[:, None])))
    u = np.asarray(jax.random.uniform(k2, (n,)))
    y = (u[:, None] > cdf).sum(axis=1)
    return (X,), {"y": y, "n_levels": len(cut) + 1}
