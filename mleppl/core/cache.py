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
import concurrent.futures
import threading
from collections.abc import Callable, Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Program",
    "get_or_build",
    "get_or_build_fact",
    "clear",
    "info",
    "items",
    "jit",
    "named",
    "MAX_PROGRAMS",
]

# a session of ~20 models keeps each one's fit, probe, diagnosis and covariance programs
MAX_PROGRAMS = 96

_store: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
_lock = threading.RLock()


def _get_or_build(store: collections.OrderedDict, bound: int, key: Hashable, build: Callable[[], Any]) -> Any:
    """The value of ``key`` in ``store``, built and stored on a miss (least recently used out)."""
    with _lock:
        if key in store:
            store.move_to_end(key)
            return store[key]
    value = build()
    with _lock:
        store[key] = value
        store.move_to_end(key)
        while len(store) > bound:
            store.popitem(last=False)
    return value


def get_or_build(key: Hashable, build: Callable[[], Any]) -> Any:
    """The stored value for ``key``, building (and storing) it on a miss."""
    return _get_or_build(_store, MAX_PROGRAMS, key, build)


MAX_FACTS = 256
_facts: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()


def get_or_build_fact(key: Hashable, build: Callable[[], Any]) -> Any:
    """Like :func:`get_or_build` for small facts about a model (a bucketing decision), kept
    apart (at most ``MAX_FACTS``) so that they never push a compiled program out."""
    return _get_or_build(_facts, MAX_FACTS, key, build)


def named(fn: Callable, name: str) -> Callable:
    """``fn`` under the name ``mleppl_<name>``: the name JAX reports its compiled program by
    (``jax_log_compiles``, ``jax.monitoring`` events, ``benchmarks/bench_latency.py``)."""

    def call(*args, **kwargs):
        return fn(*args, **kwargs)

    call.__name__ = call.__qualname__ = f"mleppl_{name}"
    return call


def jit(fn: Callable, *, hoist: bool = False, name: str | None = None) -> Callable:
    """``jax.jit(fn)``; with ``hoist``, constants ``fn`` closes over become inputs of the program.

    ``name`` names the compiled program (see :func:`named`).

    ``jax.jit`` embeds the arrays a function closes over in the XLA program, and XLA then
    folds every operation on them at compile time: a Poisson log-density over 10⁶ embedded
    counts took 8 s to compile (``gammaln(y + 1)`` evaluated by the compiler), 0.1 s with the
    counts as an input. With ``hoist`` the function is traced to a jaxpr once per input
    signature and its constants (the data of a model whose data are held as constants, and
    whatever NumPy computed from them) are passed to the compiled program as arguments.
    """
    if name is not None:
        fn = named(fn, name)
    if not hoist:
        return Program(jax.jit(fn))
    traced: dict = {}
    lock = threading.Lock()

    def run(*args):
        leaves, tree = jax.tree_util.tree_flatten(args)
        sig = (tree, tuple((np.shape(x), jnp.result_type(x), _weak(x)) for x in leaves))
        with lock:
            hit = traced.get(sig)
        if hit is None:
            closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
            jaxpr = closed.jaxpr
            program = jax.jit(
                named(lambda consts, *xs: jax.core.eval_jaxpr(jaxpr, consts, *xs), name or "hoisted")
            )
            hit = (program, list(closed.consts), jax.tree_util.tree_structure(shapes))
            with lock:
                traced[sig] = hit
        program, consts, out_tree = hit
        return jax.tree_util.tree_unflatten(out_tree, program(consts, *leaves))

    return Program(run)  # compiled on its call: nothing to compile ahead


# XLA compiles in C++ with the GIL released: one background compilation runs on the second
# core while the caller goes on (a GLMM's fit program compiles while its start is fitted).
_AHEAD = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mleppl-compile")


class Program:
    """A compiled program (a ``jax.jit``, or :func:`jit`'s hoisting runner); a ``jax.jit``
    one can be compiled ahead, in a background thread.

    :meth:`ahead` traces and lowers the program for the given arguments in the calling
    thread (tracing evaluates the model, whose NumPyro handler stack is process-wide: it
    stays with the caller and its entry lock) and hands the XLA compilation to a background
    thread. A call waits for that compilation and then reuses it (JAX's compilation cache
    is shared by ``lower(...).compile()`` and the call). Other attributes are the jit's.
    """

    __slots__ = ("_jit", "_pending", "_called")

    def __init__(self, jitted):
        self._jit = jitted
        self._pending = None
        self._called = False

    def __call__(self, *args):
        self._called = True
        pending = self._pending
        if pending is not None:
            self._pending = None
            pending.result()  # errors of the ahead compilation surface in the call below
        return self._jit(*args)

    def ahead(self, *args) -> None:
        """Start compiling for ``args`` (arrays or ``jax.ShapeDtypeStruct``) in the background;
        nothing once the program has been called (a warm refit: no lowering to pay) or while
        it is compiling."""
        lowered = self._lowered(args)
        if lowered is not None:
            self._pending = _AHEAD.submit(_compile, lowered)

    def ahead_here(self, *args) -> None:
        """Compile for ``args`` now, in the calling thread (while another program compiles in
        the background); nothing once the program has been called."""
        lowered = self._lowered(args)
        if lowered is not None:
            _compile(lowered)

    def _lowered(self, args):
        """The program lowered for ``args``, or None where there is nothing to compile ahead:
        called already, compiling, or a hoisted program (traced per signature on its call)."""
        if self._called or self._pending is not None or not hasattr(self._jit, "lower"):
            return None
        try:
            return self._jit.lower(*args)
        except Exception:  # noqa: BLE001 - the call itself will raise it where it is wanted
            return None

    def __getattr__(self, name):
        return getattr(self._jit, name)


def _compile(lowered):
    try:
        lowered.compile()
    except Exception:  # noqa: BLE001 - the call recompiles and raises in the caller's thread
        pass


def _weak(x) -> bool:
    return isinstance(x, (int, float, complex)) or bool(getattr(x, "weak_type", False))


def clear() -> None:
    """Forget every compiled program (the next fit of each model recompiles)."""
    with _lock:
        _store.clear()
        _facts.clear()


def info() -> dict:
    """``{"size": programs held, "max_size": MAX_PROGRAMS}``."""
    with _lock:
        return {"size": len(_store), "max_size": MAX_PROGRAMS}


def items() -> list[tuple]:
    """A snapshot of ``(key, program)`` pairs, least recently used first (for tests and tools)."""
    with _lock:
        return list(_store.items())


_OWN_CACHE: str | None = None  # the folder enable_persistent_cache chose (not the user's)


def enable_persistent_cache() -> str | None:
    """Turn on JAX's persistent compilation cache in a user cache folder, unless the user chose.

    A second process's first fit of the same model then loads the compiled program instead
    of compiling it (measured ~0.7 s vs ~3.7 s). Respected as they are: a cache folder
    already set (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``); ``MLEPPL_COMPILATION_CACHE=0``
    turns this off; ``MLEPPL_COMPILATION_CACHE=<folder>`` picks the folder. Returns the
    folder in use (None when off).
    """
    import os

    import jax

    choice = os.environ.get("MLEPPL_COMPILATION_CACHE", "")
    if choice.lower() in ("0", "off", "false", "no"):
        return None
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    folder = choice or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "mleppl", "jax"
    )
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:  # a read-only home: go on without the cache
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    global _OWN_CACHE
    _OWN_CACHE = folder
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return folder


def off_across_processes() -> None:
    """Turn mleppl's own persistent cache off once JAX runs several processes.

    Under ``jax.distributed`` with gloo, a process that loads a program from the shared cache
    folder while the other compiles it left both waiting in the fit's first collective
    (measured: a two-process logistic fit hung on its second run, and returned in 5.8 s
    with the cache off). A cache folder the user chose is left as it is. Each entry point
    calls this; after the first multi-process call it costs one comparison.
    """
    global _OWN_CACHE
    if _OWN_CACHE is None:
        return
    import jax

    if not jax.distributed.is_initialized():
        return
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    _OWN_CACHE = None
