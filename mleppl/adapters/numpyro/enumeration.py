"""Discrete latent sites summed out exactly: NumPyro's funsor enumeration, the number of
values of an enumerable site, and the posterior of each value (the gradient of the
enumerated log-likelihood with respect to a tilt of the site's log-density).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from numpyro.primitives import Messenger


def discrete_support_size(tr: dict, name: str) -> int:
    """Number of values of an enumerable discrete site."""
    fn = tr[name]["fn"]
    return int(fn.enumerate_support(expand=False).shape[0])


def enumerated_log_density(model: Callable, args: tuple, kwargs: dict, values: dict, max_plate_nesting: int):
    """Joint log-density with every discrete latent site summed out exactly (NumPyro's funsor
    enumeration: ``enum(config_enumerate(model))``)."""
    from numpyro.contrib.funsor import config_enumerate, enum
    from numpyro.contrib.funsor import log_density as enum_log_density

    m = enum(config_enumerate(model), first_available_dim=-max_plate_nesting - 1)
    ll, _ = enum_log_density(m, args, kwargs, values)
    return ll


class _Tilt(Messenger):
    """Add ``eps[name][..., value]`` to the log-density of the named discrete sites, so that
    the gradient of the enumerated log-likelihood with respect to ``eps`` is the posterior
    probability of each value (the derivative of a log-sum-exp is a softmax)."""

    def __init__(self, fn=None, eps=None):
        self.eps = dict(eps or {})
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample":
            return
        name = msg["name"]
        dim_to_name = (msg.get("infer") or {}).get("dim_to_name") or {}
        time_dim = next((d for d, n in dim_to_name.items() if n == f"_time_{name}"), None)
        if name in self.eps and time_dim is not None:
            # a site inside numpyro.contrib.control_flow.scan, stacked over steps 1..T−1 with
            # its time dimension at name_to_dim["_time_<name>"]; step 0 is the site "_PREV_<name>"
            eps = self.eps[name]
            if eps.ndim != 2:
                raise ValueError(
                    f"site '{name}' inside scan: expected one chain (no plates), got {eps.shape[:-1]}"
                )
            shape = (eps.shape[0] - 1,) + (1,) * (-time_dim - 1) + eps.shape[-1:]
            msg["fn"] = _Tilted(msg["fn"], eps[1:].reshape(shape))
        elif name in self.eps:
            msg["fn"] = _Tilted(msg["fn"], self.eps[name])
        elif name.startswith("_PREV_") and name[6:] in self.eps and self.eps[name[6:]].ndim == 2:
            msg["fn"] = _Tilted(msg["fn"], self.eps[name[6:]][0])


def _tilted_class():
    from numpyro.distributions import Distribution

    class Tilted(Distribution):
        def __init__(self, base, eps):
            self.base, self.eps = base, eps
            super().__init__(base.batch_shape, base.event_shape)

        @property
        def support(self):
            return self.base.support

        @property
        def has_enumerate_support(self):
            return True

        def enumerate_support(self, expand=True):
            return self.base.enumerate_support(expand)

        def sample(self, key, sample_shape=()):
            return self.base.sample(key, sample_shape)

        def log_prob(self, value):
            k = self.eps.shape[-1]
            onehot = jax.nn.one_hot(jnp.asarray(value, dtype=jnp.int32), k, dtype=self.eps.dtype)
            return self.base.log_prob(value) + jnp.sum(onehot * self.eps, axis=-1)

    return Tilted


def _Tilted(base, eps):  # noqa: N802 - a class made on first use (NumPyro's Distribution import)
    return _tilted_class()(base, eps)


def latent_posterior(model: Callable, args, kwargs, values, names, shapes, max_plate_nesting: int) -> dict:
    """P(site = k | y, θ) for each named discrete site, shape (*batch, K): exact, by the gradient
    of the enumerated log-likelihood with respect to a tilt of each site's log-density."""

    def loglik(eps):
        return enumerated_log_density(_Tilt(model, eps), args, kwargs, values, max_plate_nesting)

    eps0 = {n: jnp.zeros(shape) for n, shape in zip(names, shapes)}
    return jax.grad(loglik)(eps0)
