"""The one entry decorator: float64 without touching the caller's global JAX setting,
and one caller at a time.

NumPyro's effect-handler stack is global to the process: two threads tracing a model at
once see each other's plates and handlers (measured before this lock: 24–32 of 40 fits
from 4 threads failed with errors that blamed the model, and a plate could be left on
the stack so that every later fit in the process failed). Tracing happens inside every
entry point (binding, and JAX's tracing of a program on its first call), so each entry
point holds one re-entrant process-wide lock.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import jax

from . import cache

__all__ = ["float64"]

_ENTRY_LOCK = threading.RLock()


def float64[F: Callable](fn: F) -> F:
    """Run ``fn`` inside ``jax.enable_x64(True)``, holding the entry lock.

    Every public entry point that evaluates the likelihood wears it; code below
    the entry points assumes float64 and never enters the context itself.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if cache._OWN_CACHE is not None:
            cache.off_across_processes()
        with _ENTRY_LOCK, jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
