"""Nonlinear least squares as maximum likelihood: a logistic growth curve.

Likelihood
----------
.. math:: y_i \\sim \\mathcal N\\Big(\\frac{b_1}{1 + e^{b_2 - b_3 x_i}}, \\sigma^2\\Big),
   \\qquad -\\log L = \\frac n2\\log(2\\pi\\sigma^2) + \\frac{1}{2\\sigma^2}\\sum_i r_i^2 ,

so (b₁, b₂, b₃) are the nonlinear-least-squares estimates and σ̂² = RSS/n.
``b1`` is the asymptotic yield, ``b3`` the growth rate and ``b2/b3`` the time
of half-maximal growth. Like any nonlinear regression the likelihood is not
concave; the fit starts from NIST's published "start 2" values.

Data
----
NIST StRD nonlinear regression dataset *Rat42* (Ratkowsky 1983, pasture
yield against growing time, 9 observations; public domain, US government).
NIST certifies b = (72.462237576, 2.6180768402, 0.067359200066) with standard
errors (1.7340283401, 0.088295217536, 0.0034465663377) computed with
s² = RSS/(n − p); the MLE standard errors are these times √((n − p)/n).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, read_csv

CERTIFIED = {
    "b": np.array([7.2462237576e01, 2.6180768402e00, 6.7359200066e-02]),
    "se": np.array([1.7340283401e00, 8.8295217536e-02, 3.4465663377e-03]),
    "rss": 8.0565229338e00,
}
START = {"b": np.array([75.0, 2.5, 0.07]), "sigma": 1.0}  # NIST start 2
TRUE = {"b": np.array([72.0, 2.6, 0.067]), "sigma": 1.5}


def model(x, y=None):
    """y ~ Normal(b1 / (1 + exp(b2 − b3 x)), σ); weakly informative priors for the Bayesian fit."""
    b = numpyro.sample(
        "b", dist.Normal(jnp.array([50.0, 0.0, 0.0]), jnp.array([100.0, 10.0, 1.0])).to_event(1)
    )
    sigma = numpyro.sample("sigma", dist.HalfNormal(10.0))
    mean = b[0] / (1.0 + jnp.exp(b[1] - b[2] * x))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Normal(mean, sigma), obs=y)


def load() -> Example:
    df = read_csv("rat42.csv")
    return Example(
        name="nonlinear_regression",
        args=(df["day"].to_numpy(float),),
        kwargs={"y": df["yield"].to_numpy(float)},
        description="NIST Rat42 pasture yield, logistic growth curve (nonlinear least squares)",
        labels={"b": ["b1_asymptote", "b2_location", "b3_rate"]},
        init=START,
        reference="NIST StRD certified values",
    )


def simulate(rng_key, n: int):
    k1, k2 = jax.random.split(rng_key)
    x = np.asarray(jax.random.uniform(k1, (n,), minval=0.0, maxval=100.0))
    b = TRUE["b"]
    y = b[0] / (1.0 + np.exp(b[1] - b[2] * x)) + TRUE["sigma"] * np.asarray(jax.random.normal(k2, (n,)))
    return (x,), {"y": y}
