"""Laplace against adaptive quadrature on a random-slope logistic GLMM (vector AGQ).

Simulated, seeded: 60 groups × 6 binary observations, correlated random intercept and slope
(SDs 1.2 and 0.8, correlation 0.3), fixed effects (−0.5, 1.0). Each nagq is a fresh fit;
the table (Markdown) goes to standard output, for docs/guide/latent.md.

    python benchmarks/bench_agq_vector.py
"""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import mleppl


def model(x, g, n_groups, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
    tau = numpyro.sample("tau", dist.HalfNormal(2).expand([2]).to_event(1))
    corr = numpyro.sample("L", dist.LKJCholesky(2))
    with numpyro.plate("group", n_groups):
        u = numpyro.sample("u", dist.MultivariateNormal(jnp.zeros(2), scale_tril=tau[:, None] * corr))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=b[0] + u[g, 0] + (b[1] + u[g, 1]) * x), obs=y)


def main() -> None:
    rng = np.random.default_rng(11)
    G, per = 60, 6
    g = np.repeat(np.arange(G), per)
    x = rng.normal(size=G * per)
    cov = np.array([[1.44, 0.3 * 1.2 * 0.8], [0.3 * 1.2 * 0.8, 0.64]])
    u = rng.multivariate_normal([0, 0], cov, G)
    eta = -0.5 + u[g, 0] + (1.0 + u[g, 1]) * x
    y = (rng.uniform(size=x.size) < 1 / (1 + np.exp(-eta))).astype(np.float64)
    rows = []
    for nagq in (1, 3, 5, 7, 9, 13, 17):
        t = time.perf_counter()
        r = mleppl.fit_mle(model, x, g, G, y=y, random=["u"], nagq=nagq)
        first = time.perf_counter() - t
        t = time.perf_counter()
        mleppl.fit_mle(model, x, g, G, y=y, random=["u"], nagq=nagq)
        warm = time.perf_counter() - t
        rows.append((nagq, r, first, warm))
    ref = rows[-1][1]
    print("| nagq | log-likelihood | Δ to nagq=17 | b₀ | b₁ | τ₀ | τ₁ | ρ | first fit (s) | refit (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for nagq, r, first, warm in rows:
        b, tau, L = (np.asarray(r.params[k]) for k in ("b", "tau", "L"))
        print(
            f"| {nagq} | {r.loglik:.6f} | {r.loglik - ref.loglik:.2e} | {b[0]:.4f} | {b[1]:.4f} | "
            f"{tau[0]:.4f} | {tau[1]:.4f} | {L[1, 0]:.4f} | {first:.1f} | {warm:.2f} |"
        )


if __name__ == "__main__":
    main()
