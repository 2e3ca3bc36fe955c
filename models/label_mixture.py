"""Two-component log-normal mixture written with an explicit discrete label (summed out by enumeration).

Likelihood
----------
.. math:: z_i \\sim \\operatorname{Categorical}(w),\\qquad
   \\log y_i \\mid z_i = k \\sim \\mathcal N(\\mu_k, \\sigma_k^2),

.. math:: \\log L = \\sum_i \\log \\sum_{k=1}^{2} w_k\\,\\mathcal N(\\log y_i \\mid \\mu_k, \\sigma_k^2)
   \\;(+\\text{the Jacobian } -\\textstyle\\sum_i \\log y_i),

exactly: the label ``z`` is a discrete latent site, and ``fit_mle`` sums it out by
enumeration (funsor) instead of treating it as a parameter. Written this way,
``res.latent_probabilities()["z"]`` gives each observation's posterior class
probabilities (the EM responsibilities) at the estimate. The locations are an
``ordered_vector`` (μ₁ < μ₂), which removes label switching.

Data
----
Proline content (mg/l) of 178 Italian wines from three cultivars (Forina et al.,
PARVUS, 1988; UCI Machine Learning Repository *Wine*, CC BY 4.0), copy as shipped
with scikit-learn (``sklearn/datasets/data/wine_data.csv``, BSD-3). Cultivar 0
(Barolo) has high proline (≈ 1100 mg/l), the other two ≈ 500–650 mg/l; the
mixture recovers the split without the cultivar column, and the responsibilities
(P(high) > 0.5) classify 164 of the 178 wines (92 %) correctly as Barolo or not
(``cultivar`` is kept in the CSV to check this).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, read_csv

TRUE = {"weights": np.array([0.6, 0.4]), "mu": np.array([6.2, 7.0]), "sigma": np.array([0.25, 0.2])}


def model(y=None, n: int | None = None):
    """z ~ Categorical(w); y | z ~ LogNormal(μ_z, σ_z); Dirichlet, ordered Normal and HalfNormal priors."""
    weights = numpyro.sample("weights", dist.Dirichlet(jnp.ones(2)))
    mu = numpyro.sample(
        "mu",
        dist.TransformedDistribution(
            dist.Normal(6.0, 5.0).expand([2]).to_event(1), dist.transforms.OrderedTransform()
        ),
    )
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0).expand([2]).to_event(1))
    with numpyro.plate("obs", n if y is None else y.shape[0]):
        z = numpyro.sample("z", dist.Categorical(weights))
        numpyro.sample("y", dist.LogNormal(mu[z], sigma[z]), obs=y)


def load() -> Example:
    df = read_csv("wine_proline.csv")
    return Example(
        name="label_mixture",
        args=(),
        kwargs={"y": df["proline_mg_l"].to_numpy(float)},
        description="Wine proline, two-component log-normal mixture with an enumerated Categorical label",
        labels={"weights": ["low", "high"], "mu": ["low", "high"], "sigma": ["low", "high"]},
        reference="the same likelihood written with MixtureSameFamily (tests/test_latent.py pattern)",
    )


def simulate(rng_key, n: int):
    k1, k2 = jax.random.split(rng_key)
    comp = (np.asarray(jax.random.uniform(k1, (n,))) < TRUE["weights"][1]).astype(int)
    z = np.asarray(jax.random.normal(k2, (n,)))
    return (), {"y": np.exp(TRUE["mu"][comp] + TRUE["sigma"][comp] * z)}
