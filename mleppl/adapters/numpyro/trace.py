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
from numpyro.distributions.transforms import biject_to
from numpyro.infer.initialization import init_to_median, init_to_uniform

from .priors import ObservedArrays
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
    model = ObservedArrays(model)

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
    except Exception as first:  # noqa: BLE001 - any failure: retry at draws from the priors
        # the model may be invalid at the origin (an identity-link Gamma rate k / (b0 + b1·x)
        # at b = 0) yet valid elsewhere: draws from its priors, then uniform draws in (−2, 2)
        # on the unconstrained scale, as the start search would try them
        from numpyro.infer.initialization import init_to_sample

        error = first
        for attempt in range(TRACE_ATTEMPTS):
            key = rng_key if attempt == 0 else jax.random.fold_in(rng_key, 7_000 + attempt)
            seeded = handlers.seed(model, key)
            if attempt % 2:
                seeded = handlers.substitute(seeded, substitute_fn=init_to_uniform(radius=2))
            elif attempt:
                seeded = handlers.substitute(seeded, substitute_fn=init_to_sample)
            if init:
                seeded = handlers.substitute(seeded, data=init)
            try:
                return handlers.trace(seeded).get_trace(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - the next draw; the first error is reported
                if attempt == 0:
                    error = e
                if not isinstance(e, ValueError):
                    raise
        raise error from None


# Draws at which the first trace is retried when the model cannot be evaluated at the origin.
TRACE_ATTEMPTS = 10


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


def abstract_probe(model: Callable, rebuild: Callable, leaves: tuple, tr: dict, rng_key) -> tuple[str, tuple]:
    """One abstract trace of the model's log-density with its data: why it cannot be traced
    with the data abstract ("" if it can), and the data leaves used as indices.

    The log-density is traced once under ``jax.make_jaxpr`` with the data leaves abstract and
    every latent and param site held at its value in ``tr`` (a trace made with the concrete
    data): no XLA compilation. A model that applies NumPy to its data (``np.log(x)``,
    ``~np.isnan(y)``) raises ``TracerArrayConversionError`` here, one that branches on data
    values a ``ConcretizationTypeError``. The second item, ``((leaf, size), ...)``, lists each
    data leaf that indexes an axis of ``size`` entries (``u[g]``, ``jnp.take(u, g)``): JAX
    clamps (or fills) out-of-range indices silently, so the caller checks the values.
    """
    values = {
        name: site["value"]
        for name, site in tr.items()
        if (site["type"] == "sample" and not site["is_observed"]) or site["type"] == "param"
    }
    seeded = handlers.seed(model, rng_key)

    def f(*data):
        args, kwargs = rebuild(data)
        return log_density(seeded, args, kwargs, values)[0]

    needs_values = (
        jax.errors.TracerArrayConversionError,
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerBoolConversionError,
        jax.errors.TracerIntegerConversionError,
    )
    try:
        closed = jax.make_jaxpr(f)(*leaves)
    except needs_values as e:  # the model needs concrete data: NumPy on it, or a branch on it
        first = (str(e).strip().splitlines() or [""])[0]
        return f"{type(e).__name__}: {first[:200]}", ()
    except Exception:  # noqa: BLE001 - any other error is the model's own: the fit reports it
        return "", ()
    try:
        uses = index_uses(closed.jaxpr)
    except Exception:  # noqa: BLE001 - an unfamiliar program: no index check, never a failure
        uses = ()
    return "", uses


# Primitives that pass an index array through unchanged in value (jnp's indexing inserts them).
_SAME_VALUES = {"convert_element_type", "broadcast_in_dim", "reshape", "squeeze", "expand_dims", "copy"}
_CALLS = ("jaxpr", "call_jaxpr", "fun_jaxpr")


def index_uses(jaxpr) -> tuple[tuple[int, int], ...]:
    """``((input position, axis size), ...)`` for each input of ``jaxpr`` used, as it is or
    with NumPy's negative-index wrap, as gather or dynamic-slice indices (nested calls too).

    Notes
    -----
    ``u[g]`` lowers to ``select_n(g < 0, g, g + n)``, a convert, a broadcast and a ``gather``
    whose ``start_index_map`` names the axis of ``u`` indexed; ``v[g, h]`` concatenates the
    columns first. The walk follows only those value-preserving steps, so ``u[g - 1]`` (a
    computed index) is not attributed to ``g``.
    """
    out: dict[int, int] = {}

    def walk(jx, src: dict):
        shifted: dict = {}
        cols: dict = {}
        for eqn in jx.eqns:
            name = eqn.primitive.name
            ins = eqn.invars
            key = lambda v: v if not hasattr(v, "val") else None  # noqa: E731 - literals have .val
            if name in _SAME_VALUES and key(ins[0]) in src:
                src[eqn.outvars[0]] = src[ins[0]]
            elif name == "add" and any(key(v) in src for v in ins) and any(hasattr(v, "val") for v in ins):
                shifted[eqn.outvars[0]] = next(src[v] for v in ins if key(v) in src)
            elif name == "select_n":
                leaves = {src.get(key(v), shifted.get(key(v))) for v in ins[1:]}
                if len(leaves) == 1 and None not in leaves and any(key(v) in src for v in ins[1:]):
                    src[eqn.outvars[0]] = leaves.pop()
            elif name == "concatenate":
                cols[eqn.outvars[0]] = [src.get(key(v)) if v.aval.shape[-1:] == (1,) else None for v in ins]
            elif name == "gather":
                operand, idx = ins[0], key(ins[1])
                dims = eqn.params["dimension_numbers"].start_index_map
                per_col = [src[idx]] * len(dims) if idx in src else cols.get(idx, [None] * len(dims))
                for leaf, d in zip(per_col, dims):
                    if leaf is not None:
                        size = operand.aval.shape[d]
                        out[leaf] = min(out.get(leaf, size), size)
            elif name == "dynamic_slice":
                operand = ins[0]
                for d, v in enumerate(ins[1:]):
                    if key(v) in src and eqn.params["slice_sizes"][d] == 1:
                        size = operand.aval.shape[d]
                        out[src[v]] = min(out.get(src[v], size), size)
            else:
                for p in _CALLS:
                    sub = eqn.params.get(p)
                    if sub is None:
                        continue
                    inner = getattr(sub, "jaxpr", sub)
                    walk(inner, {iv: src[key(v)] for iv, v in zip(inner.invars, ins) if key(v) in src})

    walk(jaxpr, {v: i for i, v in enumerate(jaxpr.invars)})
    return tuple(sorted(out.items()))


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


def _bounds(support) -> tuple:
    """The array-valued bounds of an interval-type support (empty for fixed supports)."""
    out = []
    for attr in ("lower_bound", "upper_bound"):
        b = getattr(support, attr, None)
        if b is not None and not isinstance(b, (int, float)):
            out.append(np.asarray(b, dtype=np.float64))
    base = getattr(support, "base_constraint", None)  # independent(...) wraps the interval
    return tuple(out) + (_bounds(base) if base is not None else ())


def _moved(site):
    """Another value of a latent site: its unconstrained value shifted by 0.5 (continuous), the
    largest value of its support (discrete, where known), else the value plus one."""
    fn, v = site["fn"], site["value"]
    if fn.support.is_discrete:
        hi = getattr(fn.support, "upper_bound", None)
        if hi is not None:
            return jnp.broadcast_to(jnp.asarray(hi), jnp.shape(v)).astype(jnp.asarray(v).dtype)
        return jnp.asarray(v) + 1
    t = biject_to(fn.support)
    return t(t.inv(jnp.asarray(v)) + 0.5)


def support_dependence(model: Callable, args: tuple, kwargs: dict, tr: dict, name: str) -> list[str]:
    """The latent sites on which the support of observed site ``name`` depends (``[]`` for a
    fixed support or one that depends only on data, such as a Binomial's ``total_count``).

    A support is a property of the data only if it stays put when the latent values move:
    the model is traced again with every latent site moved (see :func:`_moved`) and, only if
    the bounds changed, once per latent site to name it.
    """
    ref = _bounds(tr[name]["fn"].support)
    if not ref:
        return []
    latent = [
        n
        for n, s in tr.items()
        if s["type"] == "sample" and not s["is_observed"] and s.get("value") is not None
    ]
    if not latent:
        return []

    def changed(names) -> bool:
        values = {n: tr[n]["value"] for n in latent}
        values.update({n: _moved(tr[n]) for n in names})
        try:
            tr2 = trace_with_values(model, args, kwargs, values)
        except Exception:  # noqa: BLE001 - a value the model rejects tells nothing
            return False
        new = _bounds(tr2[name]["fn"].support)
        return len(new) != len(ref) or any(
            a.shape != b.shape or not np.allclose(a, b, equal_nan=True) for a, b in zip(ref, new)
        )

    if not changed(latent):
        return []
    return [n for n in latent if changed([n])]
