"""Shared, cached fits of the model library for the model tests.

Compiling a fit costs about a second per model and data shape, so every test
that needs a model's fit on its bundled data, or on one simulated dataset,
takes it from here (one fit per model and process).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mleppl import fit_mle, negloglik
from mleppl.model.problem import bind
from models import load_module

# Simulated sample sizes for the recovery checks: large enough that the
# asymptotic normal approximation is good, small enough to keep the suite fast.
N_SIM = {
    "ar1": 1500,
    "nonlinear_regression": 400,
    "neural_network": 4000,
    # marginal likelihoods (random effects integrated out) cost more per evaluation: fewer groups
    "random_slope_lmm": 480,  # 40 animals × 12 weeks
    "poisson_glmm": 400,  # 100 patients × 4 visits
    "label_mixture": 1000,
    "gaussian_hmm": 400,
}
N_SIM_DEFAULT = 2000
# compile-heavy marginal models (Laplace/quadrature programs take ~10 s to compile): their
# simulated-data checks run in `make test-slow`; their bundled-data checks stay in `make test`
SLOW_SIMULATION = {"random_slope_lmm", "poisson_glmm"}
# the latent-variable models run their derivative and plotting checks there too
SLOW_CHECKS = {"random_slope_lmm", "poisson_glmm", "gaussian_hmm", "label_mixture"}


@functools.cache
def bundled(name: str):
    """(module, Example, MLEResult) for a model on its bundled data."""
    mod = load_module(name)
    ex = mod.load()
    res = fit_mle(mod.model, *ex.args, init=ex.init, **ex.fit_options, **ex.kwargs)
    return mod, ex, res


def fit_options(name: str) -> dict:
    """Extra ``fit_mle`` options of a model (``random=``, ``nagq=``), from its bundled Example."""
    return load_module(name).load().fit_options


class TraceCounter:
    """A model wrapper that counts how often the model is traced under ``jit``.

    Concrete calls (the one eager trace ``fit_mle`` makes to read the sites)
    are not counted; calls with tracer arguments happen only while JAX traces
    a compiled program.
    """

    def __init__(self, model):
        self.model = model
        self.traced = 0
        functools.update_wrapper(self, model)

    def __call__(self, *args, **kwargs):
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves((args, kwargs))):
            self.traced += 1
        return self.model(*args, **kwargs)


@functools.cache
def counted(name: str) -> TraceCounter:
    return TraceCounter(load_module(name).model)


def sim_init(mod, name: str, args: tuple, kwargs: dict):
    """Start for a simulated fit: the model's own start rule (``initial``) if it has one,
    the truth where the likelihood is multimodal (a start in the right basin), else the default."""
    if name == "ar1":
        return mod.initial(*args, **kwargs)
    if name in ("nonlinear_regression", "neural_network", "gaussian_hmm"):
        return {k: np.asarray(v, dtype=float) for k, v in mod.TRUE.items()}
    return None


@functools.cache
def simulated(name: str, seed: int = 0):
    """(args, kwargs, MLEResult) for a large simulated dataset, fitted through the counting wrapper."""
    mod = load_module(name)
    n = N_SIM.get(name, N_SIM_DEFAULT)
    args, kwargs = as_float64(mod.simulate(jax.random.PRNGKey(seed), n))
    res = fit_mle(counted(name), *args, init=sim_init(mod, name, args, kwargs), **fit_options(name), **kwargs)
    return args, kwargs, res


@functools.cache
def gradient_fn(name: str):
    """Jitted gradient of the bundled-data negative log-likelihood over z."""
    mod, ex, _ = bundled(name)
    with jax.enable_x64(True):
        if ex.fit_options:
            # a marginal likelihood (random effects integrated out): the bound problem's objective,
            # which is what fit_mle optimizes (``negloglik`` has no ``random=``)
            problem = bind(mod.model, ex.args, ex.kwargs, jax.random.PRNGKey(0), **ex.fit_options)
            return jax.jit(jax.grad(lambda z: problem.negloglik(z, problem.data)))
        nll = negloglik(mod.model, *ex.args, **ex.kwargs)
        return jax.jit(jax.grad(nll.fun))


def gradient(name: str, z) -> np.ndarray:
    with jax.enable_x64(True):
        return np.asarray(gradient_fn(name)(jnp.asarray(z, dtype=jnp.float64)))


def as_float64(tree):
    """Simulated data come from jax.random in float32 while x64 is off: hand them to the
    library as float64 (they are the data; nothing is lost by widening)."""
    return jax.tree_util.tree_map(
        lambda a: np.asarray(a, np.float64) if np.asarray(a).dtype.kind == "f" else a, tree
    )
