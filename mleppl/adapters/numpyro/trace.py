"""Tracing the user's model: once with the data (latent sites at the origin, no random
numbers; ``numpyro.param`` initial values checked), with given values, abstractly (shapes
only, nothing compiled; and the probe for a model that needs concrete data), at start
values, and its joint log-density via NumPyro.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.distributions import constraints
from numpyro.infer.initialization import init_to_median, init_to_uniform

from .sites import _origin_value


class ParamValueError(ValueError):
    """A ``numpyro.param`` site declared with an initial value outside its constraint."""


def _check_param_value(site) -> None:
    constraint = site["kwargs"].get("constraint", constraints.real)
    v = site["args"][0] if site["args"] else None
    if v is None or callable(v):
        return
    v = jnp.asarray(v)
    if not (bool(np.all(np.asarray(constraint(v)))) and bool(np.all(np.isfinite(np.asarray(v))))):
        raise ParamValueError(
            f"numpyro.param site '{site['name']}': expected an initial value inside its constraint "
            f"{constraint}, got {np.asarray(v)}"
        )


def trace_model(model: Callable, args: tuple, kwargs: dict, rng_key, init: dict | None = None) -> dict:
    """Trace the original model once with the data.

    Latent sites are placed at ``init`` where given, else at the origin of their
    unconstrained space rather than sampled from their priors: no random-number
    kernels to compile, which makes a fresh process's first fit about half a
    second faster. A model that needs a random key of its own
    (``numpyro.prng_key()``) is traced again under ``seed``.
    """
    init = dict(init or {})

    def value(site):
        if site["type"] == "param":
            _check_param_value(site)
            return None
        if site["type"] == "sample" and not site["is_observed"] and site["name"] in init:
            fn = site["fn"]
            shape = (
                tuple(site["kwargs"].get("sample_shape", ()) or ())
                + tuple(fn.batch_shape)
                + tuple(fn.event_shape)
            )
            try:
                return jnp.broadcast_to(jnp.asarray(init[site["name"]], dtype=jnp.float64), shape)
            except (ValueError, TypeError):
                return _origin_value(site)
        return _origin_value(site)

    try:
        return handlers.trace(handlers.substitute(model, substitute_fn=value)).get_trace(*args, **kwargs)
    except ParamValueError:
        raise
    except Exception:  # noqa: BLE001 - any failure: retry the plain seeded way, which reports
        seeded = handlers.seed(model, rng_key)
        if init:
            seeded = handlers.substitute(seeded, data=init)
        return handlers.trace(seeded).get_trace(*args, **kwargs)


def trace_with_values(model: Callable, args: tuple, kwargs: dict, values: dict, rng_key=None) -> dict:
    """Trace a model with the given constrained values substituted at their sites; sites not
    given (discrete latents, random effects) are drawn with ``rng_key``."""
    if rng_key is not None:
        model = handlers.seed(model, rng_key)
    return handlers.trace(handlers.substitute(model, data=values)).get_trace(*args, **kwargs)


def observed_names(model: Callable, args: tuple, kwargs: dict, rng_key) -> set[str]:
    """Names of the sample sites that are observed when the model runs with these arguments."""
    tr = trace_model(model, args, kwargs, rng_key)
    return {k for k, v in tr.items() if v["type"] == "sample" and v["is_observed"]}


def log_density(model: Callable, args: tuple, kwargs: dict, values: dict):
    """Joint log-density (scale and mask applied) and the trace, via NumPyro."""
    from numpyro.infer.util import log_density as _log_density

    return _log_density(model, args, kwargs, values)


def abstract_data_failure(model: Callable, rebuild: Callable, leaves: tuple, tr: dict, rng_key) -> str:
    """Why the model cannot be traced with its data as abstract (jit-traced) values; "" if it can.

    The model's log-density is traced once under ``jax.eval_shape`` with the data leaves
    abstract and every latent and param site held at its value in ``tr`` (a trace made
    with the concrete data): no XLA compilation. A model that applies NumPy to its data
    (``np.log(x)``, ``~np.isnan(y)``) raises ``TracerArrayConversionError`` here, one that
    branches on data values a ``ConcretizationTypeError``.
    """
    values = {
        name: site["value"]
        for name, site in tr.items()
        if (site["type"] == "sample" and not site["is_observed"]) or site["type"] == "param"
    }
    seeded = handlers.seed(model, rng_key)

    def f(data):
        args, kwargs = rebuild(data)
        return log_density(seeded, args, kwargs, values)[0]

    needs_values = (
        jax.errors.TracerArrayConversionError,
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerBoolConversionError,
        jax.errors.TracerIntegerConversionError,
    )
    try:
        jax.eval_shape(f, leaves)
    except needs_values as e:  # the model needs concrete data: NumPy on it, or a branch on it
        first = (str(e).strip().splitlines() or [""])[0]
        return f"{type(e).__name__}: {first[:200]}"
    except Exception:  # noqa: BLE001 - any other error is the model's own: the fit reports it
        return ""
    return ""


def abstract_sites(model: Callable, inputs: Callable, data) -> dict:
    """``{name: (type, observed, shape, ((plate, size), ...))}`` of every site of ``model``
    traced abstractly: ``inputs(data) -> (args, kwargs, values)`` with ``data`` given as
    ``jax.ShapeDtypeStruct``s (no XLA compilation, nothing evaluated)."""
    out: dict = {}

    def f(d):
        args, kwargs, values = inputs(d)
        tr = trace_with_values(model, args, kwargs, values)
        for name, site in tr.items():
            if site["type"] in ("sample", "deterministic", "param"):
                out[name] = (
                    site["type"],
                    bool(site.get("is_observed", False)),
                    tuple(jnp.shape(site["value"])),
                    tuple((fr.name, fr.size) for fr in site.get("cond_indep_stack", ())),
                )
        return jnp.zeros(())

    jax.eval_shape(f, data)
    return out


def initial_values(model: Callable, args: tuple, kwargs: dict, rng_key, attempt: int) -> dict:
    """A trace of the ORIGINAL model at start values for its free sites.

    Attempt 0 uses the prior median; odd attempts draw from the priors, which
    are dropped from the likelihood but carry the model's own sense of scale
    (a location with a Normal(0, 10) prior is started within tens, not within
    ±2); even attempts draw uniformly in (-2, 2) on the unconstrained scale
    (NumPyro's default for MCMC). ``numpyro.param`` sites keep their declared
    initial value.
    """
    from numpyro.infer.initialization import init_to_sample

    if attempt == 0:
        strategy = init_to_median(num_samples=15)
    elif attempt % 2:
        strategy = init_to_sample
    else:
        strategy = init_to_uniform(radius=2)
    key = jax.random.fold_in(rng_key, attempt)
    seeded = handlers.seed(model, key)
    return handlers.trace(handlers.substitute(seeded, substitute_fn=strategy)).get_trace(*args, **kwargs)
