"""The negative log-likelihood over one flat unconstrained vector.

A fitted model is a function ``negloglik(z)`` of a flat vector ``z`` that
concatenates the unconstrained values of the free sites in trace order. Each
block is mapped to its site's support by the bijection NumPyro uses for that
support; no log-Jacobian is ever added, so the optimum is the maximizer of the
likelihood over the constrained parameter (MLE, not MAP).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _numpyro as npa
from ._inputs import Inputs, split_inputs

__all__ = ["Layout", "Problem", "Bound", "bind", "make_problem", "param_labels", "negloglik", "NegLogLik"]


def param_labels(name: str, shape: tuple[int, ...]) -> list[str]:
    """Labels ``name[i,j]`` for every element of a site, C order; ``name`` for scalars."""
    if shape == ():
        return [name]
    return [
        f"{name}[{','.join(str(i) for i in idx)}]" for idx in itertools.product(*(range(s) for s in shape))
    ]


class Layout(NamedTuple):
    """How the flat vectors are laid out over the free sites (static)."""

    sites: tuple[npa.Site, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sites)

    @property
    def size(self) -> int:
        """Length of the unconstrained vector z (the degrees of freedom)."""
        return sum(math.prod(s.unconstrained_shape) for s in self.sites)

    @property
    def constrained_size(self) -> int:
        return sum(math.prod(s.shape) for s in self.sites)

    @property
    def coordinate_sites(self) -> list[str]:
        """The site of each unconstrained coordinate (entry of z)."""
        return [s.name for s in self.sites for _ in range(math.prod(s.unconstrained_shape))]

    @property
    def constrained_sites(self) -> list[str]:
        """The site of each flat constrained parameter (entry of param_names)."""
        return [s.name for s in self.sites for _ in range(math.prod(s.shape))]

    @property
    def param_names(self) -> list[str]:
        return [lab for s in self.sites for lab in param_labels(s.name, s.shape)]

    def unravel(self, z: jax.Array) -> dict[str, jax.Array]:
        """Flat unconstrained vector -> dict of unconstrained site values."""
        out, i = {}, 0
        for s in self.sites:
            k = math.prod(s.unconstrained_shape)
            out[s.name] = jnp.reshape(z[i : i + k], s.unconstrained_shape)
            i += k
        return out

    def constrain(self, z: jax.Array) -> dict[str, jax.Array]:
        """Flat unconstrained vector -> dict of constrained site values."""
        u = self.unravel(z)
        return {s.name: s.transform(u[s.name]) for s in self.sites}

    def unconstrain(self, values: dict) -> jax.Array:
        """Dict of constrained site values -> flat unconstrained vector."""
        parts = [
            jnp.ravel(s.transform.inv(jnp.asarray(values[s.name], dtype=jnp.float64))) for s in self.sites
        ]
        return jnp.concatenate(parts) if parts else jnp.zeros((0,))

    def flatten(self, values: dict) -> jax.Array:
        """Dict of constrained values -> flat constrained vector (param_names order)."""
        parts = [jnp.ravel(values[s.name]) for s in self.sites]
        return jnp.concatenate(parts) if parts else jnp.zeros((0,))

    def with_blocks(self, z: np.ndarray, values: dict) -> np.ndarray:
        """A copy of flat ``z`` with the named sites' blocks set from constrained values."""
        z = np.array(z, dtype=np.float64, copy=True)
        i = 0
        for s in self.sites:
            k = math.prod(s.unconstrained_shape)
            if s.name in values:
                v = jnp.asarray(values[s.name], dtype=jnp.float64)
                z[i : i + k] = np.ravel(np.asarray(s.transform.inv(v)))
            i += k
        return z

    def split(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Flat constrained vector -> dict of constrained site values (NumPy)."""
        out, i = {}, 0
        for s in self.sites:
            k = math.prod(s.shape)
            out[s.name] = np.reshape(flat[i : i + k], s.shape)
            i += k
        return out


class Problem(NamedTuple):
    """A model bound to its data: everything the objective needs (static + dynamic).

    ``leaves`` are the array arguments (the only traced inputs); ``rebuild``
    puts them back into ``(args, kwargs)`` together with the static arguments.
    """

    model: Callable
    sites: npa.ModelSites
    layout: Layout
    rebuild: Callable  # leaves -> (args, kwargs)

    @property
    def prior_free_model(self) -> Callable:
        return npa.prior_free(self.model, self.sites)

    def negloglik(self, z: jax.Array, leaves) -> jax.Array:
        """−log L(θ(z)) with every normalizing constant kept."""
        args, kwargs = self.rebuild(leaves)
        ll, _ = npa.log_density(self.prior_free_model, args, kwargs, self.layout.constrain(z))
        return -ll

    def loglik_terms(self, z: jax.Array, leaves) -> dict[str, jax.Array]:
        """Per-observation log-likelihood terms for each observed site (scaled, masked)."""
        tr = self._trace(z, leaves)
        return {k: v[0] for k, v in npa.loglik_terms(tr, self.sites.observed).items()}

    def _trace(self, z: jax.Array, leaves) -> dict:
        """A trace of the prior-free model at θ(z) on the data."""
        args, kwargs = self.rebuild(leaves)
        return npa.trace_with_values(self.prior_free_model, args, kwargs, self.layout.constrain(z))

    def deterministic(self, z: jax.Array, leaves) -> jax.Array:
        """Flat vector of all deterministic sites at θ(z)."""
        tr = self._trace(z, leaves)
        parts = [jnp.ravel(tr[name]["value"]) for name, _ in self.sites.deterministic]
        return jnp.concatenate(parts) if parts else jnp.zeros((0,))


def make_problem(model: Callable, sites: npa.ModelSites, rebuild: Callable) -> Problem:
    return Problem(model, sites, Layout(sites.free), rebuild)


class Bound(NamedTuple):
    """A model bound to data: the problem, the array inputs, and a first trace."""

    problem: Problem
    inputs: Inputs
    trace: dict
    nobs: int


def bind(model: Callable, args: tuple, kwargs: dict, rng_key) -> Bound:
    """Trace the model with its data once, classify and validate its sites."""
    if not callable(model):
        raise TypeError(f"model: expected a callable NumPyro model, got {type(model).__name__}")
    inputs = split_inputs(model, args, kwargs)
    args_c, kwargs_c = inputs.rebuild(inputs.leaves)
    try:
        tr = npa.trace_model(model, args_c, kwargs_c, rng_key)
    except Exception as e:
        bad = nonfinite_args(inputs)
        if bad:
            raise ValueError(
                "the model could not be evaluated: expected finite covariates, got non-finite "
                f"values in argument(s) {', '.join(bad)} (drop or impute those rows); the model "
                f"raised {type(e).__name__}: {e}"
            ) from e
        msg = f"the model raised {type(e).__name__} while being traced with the given data: {e}"
        try:
            err = type(e)(msg)
        except Exception:  # noqa: BLE001 - exception types with unusual constructors
            err = RuntimeError(msg)
        raise err from e
    sites = npa.classify_sites(tr)
    if not sites.observed:
        latent = [s.name for s in sites.free]
        raise ValueError(
            "model has no observed site: expected at least one numpyro.sample(..., obs=data) "
            f"with data; got only latent or param sites {latent} (was the data argument, "
            "e.g. y=..., left out or None?)"
        )
    for name in sites.observed:
        shown = npa.display_name(tr, name)
        msg = npa.observed_shape_problem(tr, name)
        if msg:
            raise ValueError(msg.replace(f"'{name}'", f"'{shown}'"))
        bad = npa.observed_nonfinite(tr, name)
        if bad:
            raise ValueError(
                f"observed site '{shown}': expected finite data, got {bad} NaN/inf value(s) "
                "(drop those observations or mask them with obs_mask=)"
            )
        outside = npa.observed_outside_support(tr, name)
        if outside:
            raise ValueError(
                f"observed site '{shown}': expected data inside the support of its distribution, {outside}"
            )
    nobs = sum(npa.observed_count(tr, n) for n in sites.observed)
    if nobs == 0:
        raise ValueError("the data are empty: expected at least one (unmasked) observation, got 0")
    problem = make_problem(model, sites, inputs.rebuild)
    return Bound(problem, inputs, tr, nobs)


def nonfinite_args(inputs: Inputs) -> list[str]:
    """Labels (with counts) of floating array arguments holding NaN or inf."""
    out = []
    for lab, x in zip(inputs.labels, inputs.leaves):
        if np.issubdtype(x.dtype, np.floating):
            n = int(np.count_nonzero(~np.isfinite(x)))
            if n:
                out.append(f"{lab} ({n} NaN/inf)")
    return out


class NegLogLik(NamedTuple):
    """The objective of a model bound to its data, for use with any optimizer.

    ``fun(z)`` is −log L at the flat unconstrained vector ``z`` (jit- and
    grad-able; evaluated in float64, the data are held in float64 — jit it
    inside ``jax.enable_x64(True)`` to keep float64 under your own jit); ``constrain``/``unconstrain`` move between ``z`` and the dict
    of constrained site values; ``prior_free_model`` is the model with its
    priors replaced by flat densities on their supports.
    """

    fun: Callable
    constrain: Callable
    unconstrain: Callable
    param_names: list
    size: int
    nobs: int
    prior_free_model: Callable
    args: tuple
    kwargs: dict


def negloglik(model: Callable, *args, rng_key=None, **kwargs) -> NegLogLik:
    r"""The negative log-likelihood of a NumPyro model on its data, as a pure function.

    The building block under :func:`mleppl.fit_mle`: use it with any JAX
    optimizer or sampler.

    Parameters
    ----------
    model : callable
        A NumPyro model.
    *args, **kwargs
        The model's arguments, data included.
    rng_key : PRNGKey, optional
        Used only to trace the model once.

    Returns
    -------
    NegLogLik

    Notes
    -----
    :math:`\ell(z) = -\sum_{\text{observed sites}} \sum_i s_i m_i \log p(y_i \mid \theta(z))`
    with scale :math:`s_i` and mask :math:`m_i` as NumPyro applies them, and
    :math:`\theta(z)` the bijection of each site's support. It equals the
    ``Trace_ELBO`` loss of an ``AutoDelta`` guide on ``prior_free_model``.

    Examples
    --------
    >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
    >>> from mleppl import negloglik
    >>> def model(y=None):
    ...     mu = numpyro.sample("mu", dist.Normal(0, 10))
    ...     numpyro.sample("y", dist.Normal(mu, 1), obs=y)
    >>> nll = negloglik(model, y=np.array(1.5))
    >>> round(float(nll.fun(jnp.array([1.5]))), 6)  # log(2π)/2
    0.918939
    """
    import jax

    with jax.enable_x64(True):
        key = jax.random.PRNGKey(0) if rng_key is None else rng_key
        b = bind(model, args, kwargs, key)
        leaves = b.inputs.leaves
        args_c, kwargs_c = b.problem.rebuild(leaves)
    lay = b.problem.layout

    def fun(z):
        with jax.enable_x64(True):
            return b.problem.negloglik(jnp.asarray(z, dtype=jnp.float64), leaves)

    return NegLogLik(
        fun=fun,
        constrain=lay.constrain,
        unconstrain=lay.unconstrain,
        param_names=lay.param_names,
        size=lay.size,
        nobs=b.nobs,
        prior_free_model=b.problem.prior_free_model,
        args=args_c,
        kwargs=kwargs_c,
    )
