"""Subsampled plates (``plate(..., subsample_size=b)`` with b < size): which plates
subsample, the model on fixed indices or on every row (:class:`FullPlates`), the
full-data log-density accumulated in chunks of rows, and the check for a minibatch
frozen by a ``seed`` inside the model.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.primitives import Messenger

from .sites import _origin_value


def subsampled_plates(tr: dict) -> list[str]:
    """Names of the plates that subsample (``plate(..., subsample_size=b)`` with b < size)."""
    out = []
    for name, site in tr.items():
        if site["type"] == "plate":
            size, sub = site["args"][0], site["args"][1]
            if sub is not None and int(sub) != int(size):
                out.append(name)
    return out


def subsample_plates(tr: dict) -> list[tuple[str, int, int]]:
    """``(name, size, subsample_size)`` of each plate that subsamples (``subsample_size < size``)."""
    out = []
    for name, site in tr.items():
        if site["type"] == "plate":
            size, sub = site["args"][0], site["args"][1]
            if sub is not None and int(sub) != int(size):
                out.append((name, int(size), int(sub)))
    return out


class _PlateIndices(Messenger):
    """Give the named plates fixed indices instead of a random minibatch.

    ``indices[name]`` is an index array, or None for every row (the full plate).
    NumPyro's plate then scales its log-densities by ``size / len(indices)``:
    1 for the full plate. As the outer handler it is applied after any ``seed``
    inside the model, so its indices win.
    """

    def __init__(self, fn=None, indices=None):
        self.indices = dict(indices or {})
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "plate" and msg["name"] in self.indices:
            size = msg["args"][0]
            idx = self.indices[msg["name"]]
            idx = jnp.arange(size) if idx is None else idx
            msg["value"] = idx
            msg["args"] = (size, int(idx.shape[0]))


class FullPlates(_PlateIndices):
    """A subsampled model evaluated on every row: each named plate covers its full size.

    Equal (and hashing equal) for the same model and plates, so compiled programs
    cached under it are found again by the next fit of the same model.
    """

    def __init__(self, fn=None, plates=()):
        self.plates = tuple(plates)
        super().__init__(fn, indices={p: None for p in self.plates})

    def __eq__(self, other):
        return type(other) is FullPlates and other.fn == self.fn and other.plates == self.plates

    def __hash__(self):
        return hash((FullPlates, self.fn, self.plates))

    def __reduce__(self):
        return (FullPlates, (self.fn, self.plates))


def full_plates(model: Callable, plates) -> FullPlates:
    """The model with the named subsampling plates covering every row (scale 1)."""
    if isinstance(model, FullPlates):
        plates = tuple(dict.fromkeys(model.plates + tuple(plates)))
        model = model.fn
    return FullPlates(model, plates=tuple(plates))


def subsampled_model(model: Callable) -> Callable:
    """The model as the user wrote it (undo :func:`full_plates`)."""
    return model.fn if isinstance(model, FullPlates) else model


def chunked_log_density(model: Callable, args, kwargs, values: dict, plate: str, size: int, chunk: int):
    """The log-density of ``model`` with the plate ``plate`` covering all ``size`` rows,
    accumulated over chunks of ``chunk`` consecutive rows (``lax.map`` over the full chunks,
    then the remainder): NumPyro scales each chunk by ``size/chunk``, undone here exactly
    up to rounding, so the sum is the full-data log-density with memory for one chunk."""
    from numpyro.infer.util import log_density as _log_density

    def one(idx):
        ll, _ = _log_density(_PlateIndices(model, {plate: idx}), args, kwargs, values)
        return ll * (idx.shape[0] / size)

    k, r = divmod(size, chunk)
    total = jnp.zeros(())
    if k:
        total = total + jnp.sum(jax.lax.map(one, jnp.arange(k * chunk).reshape(k, chunk)))
    if r:
        total = total + one(jnp.arange(k * chunk, size))
    return total


def frozen_minibatches(model: Callable, args: tuple, kwargs: dict, plates) -> list[str]:
    """The subsampling plates whose minibatch does not change with the random key given from
    outside (a model wrapped in ``handlers.seed`` draws the same minibatch at every step)."""

    def indices(k):
        m = handlers.seed(handlers.substitute(model, substitute_fn=_origin_value), jax.random.PRNGKey(k))
        tr = handlers.trace(m).get_trace(*args, **kwargs)
        return {name: np.asarray(tr[name]["value"]) for name in plates if name in tr}

    a, b = indices(1), indices(2)
    return [name for name in a if name in b and np.array_equal(a[name], b[name])]
