"""Regenerate the numbers and figures of docs/guide/arviz.md.

Run from the repository root: ``python docs/scripts/arviz_guide.py``. Simulated
data (seed 0), so the guide is reproducible without the model library.
"""

from __future__ import annotations

import sys
from pathlib import Path

import arviz as az
import numpy as np
import numpyro
import numpyro.distributions as dist

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import mleppl  # noqa: E402

IMG = ROOT / "docs" / "img"


def regression(X, y=None):
    a = numpyro.sample("a", dist.Normal(0, 10))
    b = numpyro.sample("b", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("obs", X.shape[0]):
        mu = numpyro.deterministic("mu", a + X @ b)
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def poisson(x, y=None):
    a = numpyro.sample("a", dist.Normal(0, 5))
    b = numpyro.sample("b", dist.Normal(0, 5))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Poisson(np.exp(1.0) ** (a + b * x)), obs=y)


def negbin(x, y=None):
    a = numpyro.sample("a", dist.Normal(0, 5))
    b = numpyro.sample("b", dist.Normal(0, 5))
    phi = numpyro.sample("phi", dist.Gamma(2, 0.5))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.NegativeBinomial2(np.exp(1.0) ** (a + b * x), phi), obs=y)


def logistic(x, y=None):
    a = numpyro.sample("a", dist.Normal(0, 5))
    b = numpyro.sample("b", dist.Normal(0, 5))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=a + b * x), obs=y)


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = 1.0 + X @ np.array([0.5, -1.0]) + 0.7 * rng.normal(size=200)
    res = mleppl.fit_mle(regression, X, y=y)
    dt = res.to_datatree(num_samples=2000)
    print(res.summary().round(4))
    print(az.summary(dt, var_names=["a", "b", "sigma"]))
    print(mleppl.loo(dt))
    mleppl.plot_ppc(res, path=IMG / "arviz_ppc_regression.png")

    x = rng.uniform(-1, 1, size=300)
    counts = rng.negative_binomial(2, 2 / (2 + np.exp(1.0 + 0.8 * x)))
    fits = {"poisson": mleppl.fit_mle(poisson, x, y=counts), "negbin": mleppl.fit_mle(negbin, x, y=counts)}
    trees = {k: r.to_datatree(num_samples=2000) for k, r in fits.items()}
    print(az.compare(trees))
    for k, r in fits.items():
        print(k, "AIC", round(r.aic, 1), "loo", mleppl.loo(trees[k]).elpd)
        mleppl.plot_ppc(r, path=IMG / f"arviz_rootogram_{k}.png")

    hits = (rng.uniform(size=300) < 1 / (1 + np.exp(-(0.3 + 1.5 * x)))).astype(float)
    mleppl.plot_ppc(mleppl.fit_mle(logistic, x, y=hits), path=IMG / "arviz_pava_logistic.png")


if __name__ == "__main__":
    main()
