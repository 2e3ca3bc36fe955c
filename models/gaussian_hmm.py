"""Two-state Gaussian hidden Markov model (regime switching), hidden states summed out by enumeration.

Likelihood
----------
.. math:: x_0 \\sim \\pi(P),\\qquad x_t \\mid x_{t-1} \\sim \\operatorname{Categorical}(P_{x_{t-1}}),
   \\qquad y_t \\mid x_t \\sim \\mathcal N(\\mu_{x_t}, \\sigma^2),

.. math:: \\log L = \\log \\sum_{x_0,\\ldots,x_{T-1}} \\pi_{x_0}\\,\\mathcal N(y_0 \\mid \\mu_{x_0}, \\sigma^2)
   \\prod_{t\\ge1} P_{x_{t-1} x_t}\\,\\mathcal N(y_t \\mid \\mu_{x_t}, \\sigma^2),

with :math:`\\pi(P)` the stationary distribution of the transition matrix :math:`P`.
The chain is written with ``numpyro.contrib.control_flow.scan`` (one scanned site
``x``, started from the stationary distribution), so enumeration sums over the
:math:`2^T` paths by the forward algorithm (variable elimination, exact), and the
model compiles in seconds. (The same chain written with
``numpyro.contrib.funsor.markov`` as one site per step, ``x_0, x_1, …``, gives the
same log-likelihood, −171.27554, and ``res.latent_probabilities()`` smoothing
marginals, but its 100 unrolled steps take about a minute to compile; see
``docs/guide/latent.md``.) The state means are an ``ordered_vector`` (μ₁ < μ₂),
which removes label switching.

Data
----
Annual flow of the Nile at Aswan, 1871–1970 (10⁸ m³; Cobb 1978), as shipped with
statsmodels (``statsmodels.datasets.nile``, public domain); the same file as the
``ar1`` model. The flow dropped after the Aswan Low Dam (1898–1902); the HMM finds a
high-flow and a low-flow regime and dates the switch without being told.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.contrib.control_flow import scan

from ._common import Example, read_csv

TRUE = {"P": np.array([[0.9, 0.1], [0.15, 0.85]]), "mu": np.array([8.5, 11.0]), "sigma": 1.2}
START = {"mu": np.array([8.5, 11.0])}


def stationary(P):
    """Stationary distribution of a 2 × 2 transition matrix."""
    a, b = P[0, 1], P[1, 0]
    return jnp.stack([b, a]) / (a + b)


def model(y=None, n: int | None = None):
    """x_t | x_{t−1} ~ Categorical(P[x_{t−1}]), y_t | x_t ~ Normal(μ_{x_t}, σ); x summed out."""
    P = numpyro.sample("P", dist.Dirichlet(jnp.ones((2, 2))).to_event(1))
    mu = numpyro.sample(
        "mu",
        dist.TransformedDistribution(
            dist.Normal(10.0, 10.0).expand([2]).to_event(1), dist.transforms.OrderedTransform()
        ),
    )
    sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
    # row 0: the start (stationary) distribution; row 1 + k: the transitions out of state k
    rows = jnp.concatenate([stationary(P)[None], P])

    def step(x, y_t):
        x = numpyro.sample("x", dist.Categorical(rows[x + 1]))
        numpyro.sample("y", dist.Normal(mu[x], sigma), obs=y_t)
        return x, None

    scan(step, -1, y, length=n if y is None else y.shape[0])


def load() -> Example:
    df = read_csv("nile.csv")
    return Example(
        name="gaussian_hmm",
        args=(),
        kwargs={"y": df["volume"].to_numpy(float) / 100.0},
        description="Nile flow 1871–1970 (10¹⁰ m³), two-state Gaussian HMM (regime switch near 1898)",
        labels={"mu": ["low", "high"]},
        init=START,
        reference="NumPy forward algorithm and forward–backward (tests/test_latent.py pattern)",
    )


def simulate(rng_key, n: int):
    k1, k2 = jax.random.split(rng_key)
    u = np.asarray(jax.random.uniform(k1, (n,)))
    e = np.asarray(jax.random.normal(k2, (n,)))
    P = TRUE["P"]
    pi = np.array([P[1, 0], P[0, 1]]) / (P[0, 1] + P[1, 0])
    x = np.zeros(n, dtype=int)
    x[0] = int(u[0] > pi[0])
    for t in range(1, n):
        x[t] = int(u[t] > P[x[t - 1], 0])
    return (), {"y": TRUE["mu"][x] + TRUE["sigma"] * e}
