"""The one module-level store: compiled programs, bounded and thread-safe.

A compiled program is keyed by what determines its XLA code: the model object,
the structure and shapes of its array arguments, its static arguments, the
free sites with their supports, and the options. Data values are inputs, not
part of the key, so refitting new data of the same shapes does not retrace.
The store keeps the ``MAX_PROGRAMS`` most recently used programs: a process
that fits many distinct models (fresh closures, new shapes) stays bounded.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["get_or_build", "clear", "info", "items", "MAX_PROGRAMS"]

MAX_PROGRAMS = 64

_store: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
_lock = threading.RLock()


def get_or_build(key: Hashable, build: Callable[[], Any]) -> Any:
    """The stored value for ``key``, building (and storing) it on a miss."""
    with _lock:
        if key in _store:
            _store.move_to_end(key)
            return _store[key]
    value = build()
    with _lock:
        _store[key] = value
        _store.move_to_end(key)
        while len(_store) > MAX_PROGRAMS:
            _store.popitem(last=False)
    return value


def clear() -> None:
    """Forget every compiled program (the next fit of each model recompiles)."""
    with _lock:
        _store.clear()


def info() -> dict:
    """``{"size": programs held, "max_size": MAX_PROGRAMS}``."""
    with _lock:
        return {"size": len(_store), "max_size": MAX_PROGRAMS}


def items() -> list[tuple]:
    """A snapshot of ``(key, program)`` pairs, least recently used first (for tests and tools)."""
    with _lock:
        return list(_store.items())
