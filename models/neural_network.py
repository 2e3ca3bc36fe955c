"""A small neural-network classifier: maximum likelihood is cross-entropy training.

Likelihood
----------
.. math:: h_{ij} = \\tanh(x_i^\\top W_{\\cdot j} + b_j), \\quad
   \\eta_i = c + \\sum_{j=1}^{2} v_j h_{ij}, \\quad
   y_i \\sim \\mathrm{Bernoulli}(\\sigma(\\eta_i)), \\qquad
   -\\log L = -\\sum_i \\big[y_i \\log p_i + (1-y_i)\\log(1-p_i)\\big],

so the unpenalised maximum-likelihood fit *is* cross-entropy training of a
2-input, 2-tanh-hidden-unit, 1-logit-output network (9 parameters: ``W``
2×2, ``b`` 2, ``v`` 2, ``c``), with no weight decay.

Identifiability
---------------
The network function is unchanged by flipping the sign of a hidden unit
(``W[:, j], b[j], v[j] → −W[:, j], −b[j], −v[j]``) and by permuting the hidden
units, so every optimum has 2!·2² = 8 equivalent copies with equal
log-likelihood. The supports remove both symmetries without penalising
anything: the output weights are positive (``v > 0``, one sign per unit) and
the hidden biases are ordered (``b[0] < b[1]``, one labelling). At the
maximum both constraints are slack, so it is an interior point with the usual
Wald standard errors.

Besides the symmetry, the likelihood has genuine local optima (a network fits
from different starts to different functions): from 256 random starts,
``fit_mle(..., n_starts=256)`` reaches the maximum (log-likelihood −276.5252)
from 36; the others stop at worse local optima or run off towards infinite
weights, and none of those got above −276.568. ``load()`` therefore
carries a start (``init``, the maximum rounded to two decimals); from scratch
use ``fit_mle(model, X, y=y, n_starts=8, init={"c": logit(mean(y))})``,
which reaches the maximum from 4 of its 8 starts (``res.optima``) and may
report the worse optima in a ``MultimodalityWarning``.

Why this configuration has a finite MLE: unpenalised tanh networks on small,
well-separated data sets drive hidden weights to infinity (a saturated unit
is a step, and a step that carves off a pure region of one class keeps
improving the fit). Here the data are large relative to the parameters
(n = 1797 for 9 parameters) and the classes overlap heavily in two PCA
coordinates, so no step beats the smooth fit. The fitted network is a soft
"AND" of two half-planes: the log-odds of a 7 rise to about +4.7 where both
hidden units saturate towards the 7s and fall to about −19 where both
saturate away from them.

Data
----
The 1,797 8×8 handwritten-digit images of the UCI *Optical Recognition of
Handwritten Digits* test set (Alpaydin & Kaynak 1998; CC BY 4.0; copy as
shipped with scikit-learn, ``sklearn.datasets.load_digits``), reduced to their
first two principal components (scikit-learn 1.9.1 ``PCA(2)`` of the 64 pixel
values, 28.5 % of the variance, scores rounded to 6 decimals). ``load()``
standardizes the two scores; the label is whether the digit is a 7 (179 of
1,797).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._common import Example, read_csv

HIDDEN = 2
DIGIT = 7
# simulation truth: steep, well-separated hidden units. With gently curved units
# (|W| ≲ 1) a simulated sample is often fitted better by the limit of a unit
# turning linear (W → 0, v → ∞) than by any finite network, and the MLE runs off.
TRUE = {
    "W": np.array([[2.0, -2.0], [2.0, -1.0]]),
    "b": np.array([-1.0, 2.0]),
    "v": np.array([4.0, 4.0]),
    "c": np.array(-4.0),
}
# the maximum on the bundled data, rounded to two decimals (see the docstring)
START = {
    "W": np.array([[0.58, -1.79], [0.84, -1.09]]),
    "b": np.array([-0.49, 2.61]),
    "v": np.array([6.96, 4.88]),
    "c": np.array(-7.14),
}


def network(X, W, b, v, c):
    """The network's log-odds: ``c + tanh(X W + b) v``."""
    return jnp.tanh(X @ W + b) @ v + c


def model(X, y=None):
    """y ~ Bernoulli(logit⁻¹(c + tanh(X W + b) v)); v > 0 and ordered b identify the units.

    Priors for the Bayesian fit: Normal(0, 5) weights and intercept, ordered
    Normal(0, 5) hidden biases, HalfNormal(10) output weights.
    """
    d = X.shape[1]
    W = numpyro.sample("W", dist.Normal(0.0, 5.0).expand([d, HIDDEN]).to_event(2))
    b = numpyro.sample(
        "b",
        dist.TransformedDistribution(
            dist.Normal(0.0, 5.0).expand([HIDDEN]).to_event(1), dist.transforms.OrderedTransform()
        ),
    )
    v = numpyro.sample("v", dist.HalfNormal(10.0).expand([HIDDEN]).to_event(1))
    c = numpyro.sample("c", dist.Normal(0.0, 5.0))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=network(X, W, b, v, c)), obs=y)


def load() -> Example:
    df = read_csv("digits_pca2.csv")
    Z = df[["pc1", "pc2"]].to_numpy(float)
    X = (Z - Z.mean(axis=0)) / Z.std(axis=0)
    y = (df["digit"].to_numpy() == DIGIT).astype(float)
    return Example(
        name="neural_network",
        args=(X,),
        kwargs={"y": y},
        description="Handwritten digits (2 PCA scores): is it a 7? 2-2-1 tanh network, cross-entropy",
        labels={
            "W": ["pc1→h1", "pc1→h2", "pc2→h1", "pc2→h2"],
            "b": ["h1", "h2"],
            "v": ["h1", "h2"],
        },
        init={k: v.copy() for k, v in START.items()},
        reference="scipy BFGS on an independent NumPy cross-entropy; scikit-learn MLPClassifier",
    )


def simulate(rng_key, n: int):
    k1, k2 = jax.random.split(rng_key)
    X = np.asarray(jax.random.normal(k1, (n, 2)), dtype=float)
    eta = np.tanh(X @ TRUE["W"] + TRUE["b"]) @ TRUE["v"] + TRUE["c"]
    y = (np.asarray(jax.random.uniform(k2, (n,))) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return (X,), {"y": y}
