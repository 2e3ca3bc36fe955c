"""Models and data shared by the two-process check and its single-process reference."""

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist


def logit(X, y=None):
    b = numpyro.sample("b", dist.Normal(0, 5).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("n", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ b), obs=y)


def glmm(x, g, G, y=None):
    b = numpyro.sample("b", dist.Normal(0, 5).expand([2]).to_event(1))
    s = numpyro.sample("s", dist.HalfNormal(2))
    with numpyro.plate("grp", G):
        u = numpyro.sample("u", dist.Normal(0, s))
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=b[0] + b[1] * x + u[g]), obs=y)


def nb2(X, y=None):
    b = numpyro.sample("b", dist.Normal(0, 5).expand([X.shape[1]]).to_event(1))
    a = numpyro.sample("alpha", dist.HalfNormal(2))
    with numpyro.plate("n", X.shape[0]):
        numpyro.sample("y", dist.NegativeBinomial2(jnp.exp(X @ b), 1 / a), obs=y)


def data(n=1000, G=40, B=8, m=200, seed=0):
    """A logistic dataset, a random-intercept one whose groups lie in both halves' processes
    (groups 0–19 in the first half of the rows, 20–39 in the second), cluster labels for
    the logistic rows, and B NB2 datasets."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-X @ [0.5, -1.0, 0.2]))).astype(np.float64)
    x1, gid = X[:, 0].copy(), np.repeat(np.arange(G), n // G)
    eta = 0.3 + x1 + 0.8 * rng.normal(size=G)[gid]
    yg = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(np.float64)
    Xs = np.column_stack([np.ones(m), rng.normal(size=m)])
    mu = np.exp(Xs @ [1.0, 0.5])
    Y = rng.negative_binomial(2, 2 / (2 + mu), size=(B, m)).astype(np.float64)
    clusters = np.repeat(np.arange(50), n // 50)  # 25 clusters in each process
    return {"X": X, "y": y, "clusters": clusters, "x1": x1, "gid": gid, "G": G, "yg": yg, "Xs": Xs, "Y": Y}
