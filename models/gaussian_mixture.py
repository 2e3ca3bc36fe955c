"""Two-component Gaussian mixture, with the component label marginalized.

Likelihood
----------
.. math:: p(y_i) = w_1\\,\\mathcal N(y_i \\mid \\mu_1, \\sigma_1^2) + w_2\\,\\mathcal N(y_i \\mid \\mu_2, \\sigma_2^2),
   \\qquad -\\log L = -\\sum_i \\log p(y_i),

written with NumPyro's ``MixtureSameFamily`` so the discrete label never
appears as a site. The locations are an ``ordered_vector`` (μ₁ < μ₂), which
removes the label-switching symmetry and makes the maximum unique; the
weights are a simplex (one free parameter).

Data
----
Petal length (cm) of Fisher's (1936) 150 iris flowers (collected by E.
Anderson; public domain by age; copy as shipped with scikit-learn, UCI
Machine Learning Repository, CC BY 4.0). *Iris setosa* forms one tight mode
near 1.5 cm; *versicolor* and *virginica* together form a broad mode near
4.9 cm. The mixture rediscovers the setosa group without its label.
"""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, read_csv

TRUE = {"weights": np.array([0.35, 0.65]), "mu": np.array([-1.0, 2.0]), "sigma": np.array([0.6, 1.0])}


def model(y=None, n: int | None = None):
    """y ~ w₁ N(μ₁, σ₁) + w₂ N(μ₂, σ₂); Dirichlet, ordered Normal and LogNormal priors."""
    weights = numpyro.sample("weights", dist.Dirichlet(np.ones(2)))
    mu = numpyro.sample(
        "mu",
        dist.TransformedDistribution(
            dist.Normal(0.0, 10.0).expand([2]).to_event(1), dist.transforms.OrderedTransform()
        ),
    )
    sigma = numpyro.sample("sigma", dist.LogNormal(0.0, 2.0).expand([2]).to_event(1))
    mix = dist.MixtureSameFamily(dist.Categorical(probs=weights), dist.Normal(mu, sigma))
    with numpyro.plate("obs", n if y is None else y.shape[0]):
        numpyro.sample("y", mix, obs=y)


def load() -> Example:
    df = read_csv("iris_petal.csv")
    return Example(
        name="gaussian_mixture",
        args=(),
        kwargs={"y": df["petal_length_cm"].to_numpy(float)},
        description="Iris petal length, two-component Gaussian mixture (MixtureSameFamily)",
        labels={"weights": ["1", "2"], "mu": ["1", "2"], "sigma": ["1", "2"]},
        reference="scikit-learn GaussianMixture (EM), scipy Hessian of an independent NLL",
    )


def simulate(rng_key, n: int):
    k1, k2 = jax.random.split(rng_key)
    comp = np.asarray(jax.random.uniform(k1, (n,))) < TRUE["weights"][1]
    z = np.asarray(jax.random.normal(k2, (n,)))
    y = np.where(comp, TRUE["mu"][1] + TRUE["sigma"][1] * z, TRUE["mu"][0] + TRUE["sigma"][0] * z)
    return (), {"y": y}
