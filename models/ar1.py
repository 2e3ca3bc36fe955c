"""Stationary Gaussian AR(1) time series, exact likelihood.

Likelihood
----------
.. math:: y_1 \\sim \\mathcal N\\Big(\\mu, \\frac{\\sigma^2}{1-\\phi^2}\\Big), \\qquad
   y_t \\mid y_{t-1} \\sim \\mathcal N\\big(\\mu + \\phi(y_{t-1}-\\mu), \\sigma^2\\big),\\ t = 2..n,

.. math:: -\\log L = \\frac n2\\log(2\\pi\\sigma^2) - \\frac12\\log(1-\\phi^2)
   + \\frac{(1-\\phi^2)(y_1-\\mu)^2 + \\sum_{t\\ge2}(y_t - \\mu - \\phi(y_{t-1}-\\mu))^2}{2\\sigma^2} .

The first observation comes from the stationary distribution, so this is the
*exact* likelihood (what statsmodels' ``ARIMA(1, 0, 0)`` maximizes through
the Kalman filter), not the conditional least-squares one. |φ| < 1 is the
support of ``phi``. Called with ``y=None`` the model simulates a whole
stationary series (a ``scan`` over time).

Data
----
Annual flow of the Nile at Aswan, 1871–1970, in 10⁸ m³ (public domain; as
shipped with statsmodels, from Cobb 1978). The series has a level shift near
1898 (the Aswan dam); an AR(1) with a single mean absorbs it as persistence.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.contrib.control_flow import scan

from ._common import Example, read_csv

TRUE = {"mu": 10.0, "phi": 0.6, "sigma": 2.0}


def model(t, y=None):
    """AR(1) with mean μ, coefficient φ ∈ (−1, 1), innovation sd σ; ``t`` only fixes the length."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 1e4))
    phi = numpyro.sample("phi", dist.Uniform(-1.0, 1.0))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(1e3))
    n = t.shape[0]
    sd0 = sigma / jnp.sqrt(1.0 - phi**2)
    if y is None:
        y0 = numpyro.sample("y0", dist.Normal(mu, sd0))

        def step(prev, _):
            nxt = numpyro.sample("y_step", dist.Normal(mu + phi * (prev - mu), sigma))
            return nxt, nxt

        _, rest = scan(step, y0, None, length=n - 1)
        numpyro.deterministic("y", jnp.concatenate([y0[None], rest]))
        return
    loc = jnp.concatenate([mu[None], mu + phi * (y[:-1] - mu)])
    scale = jnp.concatenate([sd0[None], jnp.full((n - 1,), sigma)])
    with numpyro.plate("time", n):
        numpyro.sample("y", dist.Normal(loc, scale), obs=y)


def initial(t, y) -> dict:
    """Start at the sample mean and standard deviation with φ = 0.

    From the default start (μ = 0, σ = 1) far from data in the hundreds, the
    likelihood first improves by letting φ → 1 (a random walk needs no mean);
    the optimizer can then stall where NumPyro's clipped sigmoid makes the
    likelihood flat at φ = 1 − 2ε. Moment starts avoid that detour.
    """
    y = np.asarray(y, dtype=float)
    return {"mu": float(y.mean()), "phi": 0.0, "sigma": float(y.std())}


def load() -> Example:
    df = read_csv("nile.csv")
    t, y = df["year"].to_numpy(float), df["volume"].to_numpy(float)
    return Example(
        name="ar1",
        args=(t,),
        kwargs={"y": y},
        description="Nile annual flow 1871–1970, stationary AR(1), exact likelihood",
        init=initial(t, y),
        reference="statsmodels ARIMA(1, 0, 0) (exact Kalman-filter likelihood)",
    )


def simulate(rng_key, n: int):
    k1, k2 = jax.random.split(rng_key)
    mu, phi, sigma = TRUE["mu"], TRUE["phi"], TRUE["sigma"]
    eps = np.asarray(jax.random.normal(k2, (n,)))
    y = np.empty(n)
    y[0] = mu + sigma / np.sqrt(1 - phi**2) * eps[0]
    for i in range(1, n):
        y[i] = mu + phi * (y[i - 1] - mu) + sigma * eps[i]
    return (np.arange(n, dtype=float),), {"y": y}
