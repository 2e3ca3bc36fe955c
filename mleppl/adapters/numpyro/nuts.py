"""NUTS: NumPyro's ``MCMC(NUTS(model))`` run on the data (for :mod:`mleppl.bayes`)."""

from __future__ import annotations

from collections.abc import Callable


def run_nuts(model: Callable, rng_key, args: tuple, kwargs: dict, *, extra_fields=(), **options):
    """NumPyro's ``MCMC(NUTS(model))`` run on the data; returns the ``MCMC`` object.

    ``options``: ``target_accept_prob``, ``dense_mass`` (NUTS) and ``num_warmup``,
    ``num_samples``, ``num_chains``, ``chain_method``, ``progress_bar`` (MCMC).
    """
    from numpyro.infer import MCMC, NUTS

    kernel = NUTS(
        model, target_accept_prob=options.pop("target_accept_prob"), dense_mass=options.pop("dense_mass")
    )
    mcmc = MCMC(kernel, **options)
    mcmc.run(rng_key, *args, extra_fields=tuple(extra_fields), **kwargs)
    return mcmc
