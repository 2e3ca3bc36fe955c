"""The mleppl model library: one documented NumPyro model per file, each with
its bundled real dataset (see ``models/data/SOURCES.md``).

Every module exposes

- ``model(*args, **kwargs)``: an ordinary NumPyro model with priors (so NUTS
  runs on it too); its observed site(s) take ``obs=`` from a keyword argument
  that may be ``None`` for prediction;
- ``load()``: a :class:`models._common.Example` with the bundled data as the
  model's arguments, readable parameter labels, and a description;
- ``simulate(rng_key, n)``: a dataset of size ``n`` drawn from the model at
  known parameter values (``TRUE``), for recovery tests.

This folder is read from the repository (it is not installed into
site-packages): ``python -m models`` runs the demo.
"""

from importlib import import_module

NAMES = (
    "linear_regression",
    "logistic_regression",
    "softmax_regression",
    "probit_regression",
    "poisson_exposure",
    "negative_binomial",
    "gamma_glm",
    "robust_regression",
    "weibull_survival",
    "ordinal_logistic",
    "nonlinear_regression",
    "ar1",
    "zero_inflated_poisson",
    "gaussian_mixture",
    "neural_network",
    "random_slope_lmm",
    "poisson_glmm",
    "label_mixture",
    "gaussian_hmm",
)


def load_module(name: str):
    """Import one model module by its name in :data:`NAMES`."""
    if name not in NAMES:
        raise ValueError(f"unknown model {name!r}; expected one of {NAMES}")
    return import_module(f"models.{name}")


def all_modules():
    return [load_module(n) for n in NAMES]
