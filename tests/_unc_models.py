"""Models and data shared by the uncertainty tests (one function object each, so compiled
programs are reused across test modules)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist


def logit(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ beta), obs=y)


def poisson(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Poisson(jnp.exp(X @ beta)), obs=y)


def normal(y=None):
    mu = numpyro.sample("mu", dist.Normal(0, 10))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def exponential(y=None):
    rate = numpyro.sample("rate", dist.Exponential(1.0))
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Exponential(rate), obs=y)


def logit_data(rng, n=400, p=3):
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    beta = np.linspace(-0.5, 0.8, p)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(X @ beta)))).astype(float)
    return X, y


def poisson_data(rng, n=400, p=3):
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    beta = np.linspace(0.3, -0.4, p)
    # overdispersed counts (gamma-mixed), so that robust and model-based SEs differ
    mu = np.exp(X @ beta) * rng.gamma(2.0, 0.5, size=n)
    return X, rng.poisson(mu).astype(float)
