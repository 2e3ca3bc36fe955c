"""One BLAS thread while fits run, restored exactly afterwards, safe across threads."""

from __future__ import annotations

import contextlib
import functools
import threading

__all__ = ["single_threaded_blas"]

_lock = threading.Lock()
_state = {"depth": 0, "limiter": None}


@functools.cache
def _controller():
    """threadpoolctl's view of the loaded BLAS libraries, made once: building it scans the
    process's shared libraries (~4 ms, measured as a per-fit regression when made per call)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas():
    """Limit BLAS/LAPACK (OpenBLAS) to one thread while a fit runs; restore after.

    The p × p eigen-decompositions inside and after the compiled program go to
    LAPACK, whose OpenBLAS threads busy-wait and then fight XLA's own thread
    pool: measured here, six Newton steps at p = 50 took 226 ms with the default
    threads and 15 ms with one. Matrices this small gain nothing from threads.

    Nested and concurrent entries share one limit: the first entry sets it, the
    last exit restores the caller's original thread counts.
    """
    with _lock:
        if _state["depth"] == 0:
            _state["limiter"] = _controller().limit(limits=1, user_api="blas")
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                _state["limiter"].restore_original_limits()
                _state["limiter"] = None
