"""Linear mixed model with a correlated random intercept and slope per group (pig growth curves).

Likelihood
----------
.. math:: y_{gi} = (\\beta_0 + u_{g0}) + (\\beta_1 + u_{g1})\\,t_{gi} + \\varepsilon_{gi},\\qquad
   u_g \\sim \\mathcal N_2\\Big(0, \\begin{pmatrix} \\tau_0^2 & \\rho\\tau_0\\tau_1 \\\\
   \\rho\\tau_0\\tau_1 & \\tau_1^2 \\end{pmatrix}\\Big),\\quad \\varepsilon_{gi} \\sim \\mathcal N(0, \\sigma^2),

.. math:: \\log L(\\beta, \\tau, \\rho, \\sigma) = \\sum_g \\log \\int \\prod_i
   \\mathcal N(y_{gi} \\mid \\ldots)\\,\\mathcal N_2(u_g \\mid 0, \\Sigma)\\,du_g ,

the marginal likelihood with the random effects ``u`` integrated out (``random=["u"]``).
The model is Gaussian, so the Laplace approximation is exact: the fit is the ML
(not REML) fit of lme4's ``lmer(Weight ~ Time + (1 + Time | Pig), REML = FALSE)``.
``tau`` are the random-effect standard deviations and ``rho`` their correlation
(one free number, rather than an LKJ Cholesky factor whose fixed entries have no
standard error); ``res.random_effects["u"]`` holds each pig's
conditional mode (BLUP) and conditional standard deviation.

Data
----
``dietox``: weights (kg) of 72 slaughter pigs weighed weekly over 12 weeks (861
weighings) in a Danish feeding experiment (Lauridsen, Højsgaard & Sørensen 1999,
*J. Animal Science* 77, 906–916; R package geepack), copy as shipped with
statsmodels' test suite (``statsmodels/regression/tests/results/dietox.csv``,
BSD-3). statsmodels' tests quote lme4's ML fit: fixed effects (15.73863, 6.93902)
with standard errors (0.54629, 0.07927), residual variance 6.037441, random-effect
covariance (19.190922, 0.293568, 0.409695), log-likelihood −2215.753.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, read_csv

LME4_ML = {
    "b": np.array([15.73863, 6.93902]),
    "se_b": np.array([0.54629282, 0.07926954]),
    "scale": 6.037441,
    "cov_re": np.array([[19.190922, 0.293568], [0.293568, 0.409695]]),
    "loglik": -2215.753,
}
TRUE = {
    "b": np.array([15.0, 7.0]),
    "tau": np.array([4.0, 0.6]),
    "rho": 0.3,
    "sigma": 2.5,
}
WEEKS = 12


def model(t, g, n_groups: int, y=None):
    """y ~ Normal(b₀ + u_g0 + (b₁ + u_g1) t, σ), u_g ~ MVN(0, Σ(τ, ρ)); integrate u out."""
    b = numpyro.sample("b", dist.Normal(0.0, 100.0).expand([2]).to_event(1))
    tau = numpyro.sample("tau", dist.HalfNormal(10.0).expand([2]).to_event(1))
    rho = numpyro.sample("rho", dist.Uniform(-1.0, 1.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(10.0))
    tril = jnp.array([[tau[0], 0.0], [rho * tau[1], jnp.sqrt(1.0 - rho**2) * tau[1]]])
    with numpyro.plate("group", n_groups):
        u = numpyro.sample("u", dist.MultivariateNormal(jnp.zeros(2), scale_tril=tril))
    with numpyro.plate("obs", t.shape[0]):
        mean = b[0] + u[g, 0] + (b[1] + u[g, 1]) * t
        numpyro.sample("y", dist.Normal(mean, sigma), obs=y)


def load() -> Example:
    df = read_csv("dietox.csv")
    codes, pigs = np.unique(df["Pig"].to_numpy(), return_inverse=True)
    return Example(
        name="random_slope_lmm",
        args=(df["Time"].to_numpy(float), pigs.astype(np.int32), len(codes)),
        kwargs={"y": df["Weight"].to_numpy(float)},
        description="dietox pig weights, random intercept and slope per pig (Gaussian LMM, ML)",
        labels={"b": ["intercept", "week"], "tau": ["intercept", "week"]},
        reference="lme4 ML fit quoted by statsmodels' test suite; statsmodels MixedLM(reml=False)",
        fit_options={"random": ["u"]},
    )


def simulate(rng_key, n: int):
    """``n`` weighings: ``n // 12`` animals, each weighed in weeks 1–12."""
    k1, k2 = jax.random.split(rng_key)
    groups = n // WEEKS
    t = np.tile(np.arange(1.0, WEEKS + 1), groups)
    g = np.repeat(np.arange(groups), WEEKS).astype(np.int32)
    rho, tau = TRUE["rho"], TRUE["tau"]
    tril = np.array([[tau[0], 0.0], [rho * tau[1], np.sqrt(1 - rho**2) * tau[1]]])
    u = np.asarray(jax.random.normal(k1, (groups, 2))) @ tril.T
    eps = TRUE["sigma"] * np.asarray(jax.random.normal(k2, (t.size,)))
    y = TRUE["b"][0] + u[g, 0] + (TRUE["b"][1] + u[g, 1]) * t + eps
    return (t, g, groups), {"y": y}
