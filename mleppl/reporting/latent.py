"""Posterior probabilities of discrete latent sites given the maximum-likelihood estimate."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..adapters import numpyro as npa
from ..core import cache
from ..core.x64 import float64

__all__ = ["latent_probabilities"]


@float64
def latent_probabilities(rec, sites=None) -> dict:
    r"""P(site = k | y, θ̂) for each discrete latent site that was summed out.

    Parameters
    ----------
    rec : MLEResult
        A fit of a model with discrete latent sites.
    sites : list of str, optional
        Which sites (default: all discrete latent sites).

    Returns
    -------
    dict
        Site → array of shape ``(*batch, K)``: for a mixture label in a plate over
        observations, the responsibilities; for the states of a Markov chain written as one
        site per step (``x_0``, ``x_1``, …, with ``numpyro.contrib.funsor.markov``), the
        smoothing marginals; for a chain written with ``numpyro.contrib.control_flow.scan``
        (one site ``x`` over ``T`` steps), the smoothing marginals as one ``(T, K)`` array.

    Notes
    -----
    With the log-density of site :math:`z` tilted by :math:`\epsilon_{b,k}` at value
    :math:`k` in batch position :math:`b`, the enumerated log-likelihood is a log-sum-exp
    over configurations, and
    :math:`\partial \log L / \partial \epsilon_{b,k}\,|_{\epsilon = 0} = P(z_b = k \mid y, \hat\theta)`
    exactly (no sampling).

    Examples
    --------
    >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
    >>> from mleppl import fit_mle
    >>> def mixture(y=None):
    ...     w = numpyro.sample("w", dist.Dirichlet(jnp.ones(2)))
    ...     mu = numpyro.sample("mu", dist.Normal(0, 10).expand([2]).to_event(1))
    ...     with numpyro.plate("n", y.shape[0]):
    ...         z = numpyro.sample("z", dist.Categorical(w))
    ...         numpyro.sample("y", dist.Normal(mu[z], 1.0), obs=y)
    >>> y = np.array([-3.1, -2.9, -3.0, 3.0, 2.8, 3.2, 3.1])
    >>> res = fit_mle(mixture, y, init={"mu": np.array([-1.0, 1.0])})
    >>> p = res.latent_probabilities()["z"]
    >>> p.shape, np.round(p[0], 3).tolist()
    ((7, 2), [1.0, 0.0])
    """
    problem = rec.problem
    shapes = {n: (tuple(b), k) for n, b, k in problem.sites.discrete}
    if not shapes:
        raise ValueError("latent_probabilities: expected a model with discrete latent sites, got none")
    names = list(shapes) if sites is None else list(sites)
    unknown = [n for n in names if n not in shapes]
    if unknown:
        raise ValueError(f"sites: expected discrete latent sites among {list(shapes)}, got {unknown}")
    args, kwargs = problem.rebuild(problem.data)
    values = problem.layout.constrain(jnp.asarray(rec.z))

    def probs():
        return npa.latent_posterior(
            problem.prior_free_model,
            args,
            kwargs,
            values,
            names,
            [(*shapes[n][0], shapes[n][1]) for n in names],
            problem.sites.max_plate_nesting,
        )

    try:
        out = jax.device_get(cache.jit(probs, hoist=problem.constants, name="latent_probabilities")())
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"latent_probabilities: the posterior of {names} could not be formed ({e}); inside "
            "numpyro.contrib.control_flow.scan one chain with history=1 and no plates is supported: "
            "otherwise write the chain with one site per step (numpyro.contrib.funsor.markov)"
        ) from e
    return {n: np.asarray(out[n]) for n in names}
