"""Host views of data that may live on other processes.

Under JAX's multi-controller runtime (``jax.distributed``) a global ``jax.Array`` holds rows
on every process, and NumPy cannot read it (JAX refuses to fetch non-process-local values).
Binding checks (finite values, supports, counts) therefore run as small compiled
reductions where the rows are, and only their scalar results, replicated on every process,
come back, and such arrays are kept as they are, never copied to a host. Arrays of one
process take the NumPy path, as before.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def is_global(x) -> bool:
    """True for a ``jax.Array`` with rows on devices of other processes."""
    return isinstance(x, jax.Array) and not x.is_fully_addressable


def any_global(*xs) -> bool:
    """True if any leaf of ``xs`` is a global array spanning several processes."""
    return any(is_global(leaf) for leaf in jax.tree_util.tree_leaves(xs))


def on_devices(fn: Callable, *args):
    """``fn(*args)`` (written with ``jax.numpy``) compiled and run where the arrays are; its
    result, small and replicated on every process, returned as NumPy."""
    out = jax.jit(fn)(*args)
    return jax.tree_util.tree_map(np.asarray, out)


def count_true(pred: Callable, *args) -> int:
    """Number of True entries of ``pred(xp, *args)``, evaluated where the arrays are when any
    is global (``xp`` is ``jax.numpy`` then) and in NumPy otherwise."""
    if any_global(*args):
        return int(on_devices(lambda *a: jnp.sum(pred(jnp, *a)), *args))
    return int(np.sum(pred(np, *args)))


def keep(x):
    """A host record of ``x``: NumPy for an array of this process, the global array itself
    (immutable, left where its rows are) for one spanning several processes."""
    return x if is_global(x) else np.asarray(x)


def dtype_of(x) -> np.dtype:
    """The dtype of ``x`` without reading its values."""
    return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
