"""Simulation: the model with new data at its observed sites or with them unobserved,
draws of the observed sites at fixed parameters, and NumPyro's ``Predictive`` for
predictive and prior draws.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from numpyro.primitives import Messenger


class _ReplaceObserved(Messenger):
    """Give the named observed sites new values (same shapes) without touching the model."""

    def __init__(self, fn=None, values=None):
        self.values = dict(values or {})
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["is_observed"] and msg["name"] in self.values:
            msg["value"] = self.values[msg["name"]]


def replace_observed(model: Callable, values: dict) -> Callable:
    """The model with the data at the named observed sites replaced by ``values``."""
    return _ReplaceObserved(model, values=values)


class _Unobserve(Messenger):
    """Turn the named observed sites into latent sites, so that they are simulated."""

    def __init__(self, fn=None, names=()):
        self.names = frozenset(names)
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["is_observed"] and msg["name"] in self.names:
            msg["value"] = None
            msg["is_observed"] = False


def simulate_observed(
    model: Callable, args: tuple, kwargs: dict, params: dict, observed: tuple, rng_key, num_samples: int
) -> dict:
    """Draws of the observed sites from the model at fixed parameters, via ``Predictive``.

    Returns ``{site: array of shape (num_samples, *site shape)}``.
    """
    from numpyro.infer import Predictive

    pred = Predictive(
        _Unobserve(model, names=observed),
        params=params,
        num_samples=num_samples,
        return_sites=list(observed),
        batch_ndims=1,
    )
    return pred(rng_key, *args, **kwargs)


def replicate_observed(tr: dict, observed: tuple[str, ...], rng_key) -> dict[str, jax.Array]:
    """One draw of each observed site from its distribution in the trace (the likelihood at θ)."""
    out = {}
    for i, name in enumerate(observed):
        out[name] = tr[name]["fn"].sample(jax.random.fold_in(rng_key, i))
    return out


def predictive(
    model: Callable, rng_key, args: tuple, kwargs: dict, *, samples=None, params=None, num_samples=None
):
    """``numpyro.infer.Predictive``: draws of the non-fixed sites given parameter values.

    ``samples`` (leading draw axis) substitutes one parameter set per draw;
    ``params`` fixes one parameter set for all ``num_samples`` draws.
    """
    from numpyro.infer import Predictive

    if samples is not None:
        pred = Predictive(model, posterior_samples=samples, batch_ndims=1)
    else:
        pred = Predictive(model, params=params, num_samples=num_samples, batch_ndims=1)
    return pred(rng_key, *args, **kwargs)


def prior_draws(model: Callable, rng_key, args: tuple, kwargs: dict, names, num_samples: int) -> dict:
    """Draws of the named sites from the model's priors, ``{site: (S, ...)}``."""
    from numpyro.infer import Predictive

    return Predictive(model, num_samples=num_samples, return_sites=list(names))(rng_key, *args, **kwargs)
