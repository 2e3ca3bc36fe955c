"""The data boundary: the user's positional and keyword arguments to the model.

Array-like arguments (NumPy, JAX, pandas) become the traced inputs of the
compiled fit, converted to float64 (floating), int64 (integer) or bool.
Everything else (Python scalars, strings, None, callables) is static: it is
part of the compilation key. Nothing the caller passed is ever written to,
and nothing downstream holds the caller's memory: each array argument becomes
a private, read-only copy, so an (immutable) result does not change when the
caller later modifies their arrays in place.

JAX arrays are immutable and are kept where they are: an argument placed on
several devices (a ``NamedSharding`` along the observation plate, or a global
array of a multi-process run) stays there, so the compiled fit computes on it
in place (jit follows its inputs' shardings). Only a dtype conversion, done on
the same devices, ever replaces it.

With ``constants=True`` the array arguments are held as constants instead (for
models that apply NumPy to their data or index a DataFrame by column): each
keeps its type (a NumPy array stays NumPy, a DataFrame stays a DataFrame) as a
private float64 (floating) / int64 (integer) copy, and a digest of its content
enters the compilation key, so a program compiled for one dataset is never
reused for another.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from ..core.warnings import PrecisionWarning

__all__ = ["ArgSpec", "Inputs", "split_inputs", "constant_arrays", "has_pandas", "text_only", "as_rng_key"]


@functools.lru_cache(maxsize=64)
def _seed_key(seed: int) -> jax.Array:
    """``PRNGKey(seed)``, made once per seed (0.24 ms per call otherwise; keys are immutable).

    With JAX's default threefry implementation a seed in [0, 2³²) is the key ``[0, seed]``:
    built from NumPy, which spares a fresh process two compilations (26 ms)."""
    if jax.config.jax_default_prng_impl == "threefry2x32" and 0 <= seed < 2**32:
        return jax.numpy.asarray(np.array([0, seed], dtype=np.uint32))
    return jax.random.PRNGKey(seed)


def as_rng_key(rng_key):
    """A PRNG key from a key, an int seed, or None (key 0, so results are reproducible)."""
    if rng_key is None:
        rng_key = 0
    if isinstance(rng_key, (int, np.integer)) and not isinstance(rng_key, bool):
        return _seed_key(int(rng_key))
    if isinstance(rng_key, (jax.Array, np.ndarray)) and (
        jax.dtypes.issubdtype(rng_key.dtype, jax.dtypes.prng_key)
        or (rng_key.shape == (2,) and rng_key.dtype == np.uint32)
    ):
        return rng_key
    raise TypeError(
        f"rng_key: expected a jax.random.PRNGKey, an int seed or None, got {type(rng_key).__name__}"
    )


class ArgSpec(NamedTuple):
    """The static part of the model's arguments: how array leaves and static values
    fit back into ``(args, kwargs)``. Picklable (no closure)."""

    n_args: int
    kw_names: tuple[str, ...]
    structure: tuple  # per top-level argument: (treedef, kinds)
    static: tuple  # the static leaves (and, in constants mode, the data), in order
    constants: str = ""  # why the data are held as constants ("" when they are traced inputs)

    def rebuild(self, leaves) -> tuple[tuple, dict]:
        dyn = list(leaves)
        st = list(self.static)
        tops = []
        for treedef, kinds in self.structure:
            vals = [dyn.pop(0) if k[0] == "array" else st.pop(0) for k in kinds]
            tops.append(jax.tree_util.tree_unflatten(treedef, vals))
        return tuple(tops[: self.n_args]), dict(zip(self.kw_names, tops[self.n_args :]))


class Inputs(NamedTuple):
    leaves: tuple[jax.Array, ...]  # dynamic (array) leaves: immutable JAX arrays, float64/int64/bool
    labels: tuple[str, ...]  # argument label of each dynamic leaf, for messages
    key: Any  # hashable static description (compilation cache key)
    spec: ArgSpec


def _is_array_like(x) -> bool:
    if isinstance(x, (np.ndarray, np.generic, jax.Array)):
        return True
    mod = type(x).__module__ or ""
    return mod.startswith("pandas") and hasattr(x, "to_numpy")


def has_pandas(args: tuple, kwargs: dict) -> bool:
    """Whether any argument (or a leaf of a nested argument) is a pandas object."""
    leaves = jax.tree_util.tree_leaves((args, kwargs), is_leaf=_is_array_like)
    return any((type(x).__module__ or "").startswith("pandas") for x in leaves)


def text_only(args, kwargs) -> bool:
    """Whether every non-numeric array argument holds text (str labels, pandas text or
    categorical-of-text columns) and nothing else non-numeric."""

    def ok_array(a) -> bool:
        a = np.asarray(a)
        if a.dtype.kind in "biufUS":
            return True
        return a.dtype.kind == "O" and all(isinstance(v, str) for v in a.ravel())

    def ok(x) -> bool:
        mod = type(x).__module__ or ""
        if mod.startswith("pandas"):
            import pandas as pd

            cols = [x.iloc[:, i] for i in range(x.shape[1])] if isinstance(x, pd.DataFrame) else [x]
            for c in cols:
                if isinstance(c.dtype, pd.CategoricalDtype):
                    if not ok_array(np.asarray(c.cat.categories, dtype=object)):
                        return False
                elif not (pd.api.types.is_numeric_dtype(c.dtype) or pd.api.types.is_bool_dtype(c.dtype)):
                    if not (pd.api.types.is_string_dtype(c.dtype) and ok_array(c.to_numpy(dtype=object))):
                        return False
            return True
        if isinstance(x, (np.ndarray, np.generic)):
            return ok_array(x)
        return True

    leaves = jax.tree_util.tree_leaves((args, kwargs), is_leaf=_is_array_like)
    return all(ok(x) for x in leaves)


_ALIGN = 64  # bytes: JAX's CPU client adopts buffers aligned like this without copying


def _private(a: np.ndarray, dtype) -> jax.Array:
    """The data as a JAX array in ``dtype``: one copy, immutable, never a view of the
    caller's memory (so a result does not change when the caller later edits their
    arrays in place), and the only copy the fit needs (no further conversions).

    The copy is made here, in NumPy, into a 64-byte-aligned buffer, which JAX's CPU
    client adopts without copying again (one copy in all: 400 MB at 10⁶ × 50).
    ``jax.device_put(a, may_alias=False)`` was measured to alias the caller's buffer
    (jax 0.12, CPU: on an array's first put, and after a refused constants-mode fit).
    """
    dtype = np.dtype(dtype)
    buf = np.empty(a.size * dtype.itemsize + _ALIGN, dtype=np.uint8)
    start = (-buf.ctypes.data) % _ALIGN
    own = buf[start : start + a.size * dtype.itemsize].view(dtype).reshape(a.shape)
    np.copyto(own, a, casting="unsafe")  # the dtype was checked by the caller
    return jax.device_put(own)  # float64/int64: callers run under @float64; only JAX holds `own`


def _device_array(x: jax.Array, label: str) -> jax.Array:
    """A JAX array argument, kept on its devices (and sharding): JAX arrays are immutable, so
    no private copy is needed; a dtype conversion runs where the data are."""
    import jax.numpy as jnp

    kind = x.dtype.kind
    if kind == "b":
        return x
    if kind == "f":
        if x.dtype.itemsize < 8 and x.size and not bool(jnp.all(x == jnp.round(x))):
            _warn_precision(label, x.dtype, 7)
        return x if x.dtype == np.float64 else x.astype(np.float64)
    if kind in "iu":
        if x.dtype.itemsize == 8 and kind == "u" and x.size and int(jnp.max(x)) > np.iinfo(np.int64).max:
            _raise_uint(label, x.dtype, int(jnp.max(x)))
        return x if x.dtype == np.int64 else x.astype(np.int64)
    raise TypeError(f"argument {label}: expected a numeric or boolean array, got dtype {x.dtype}")


def _warn_precision(label: str, dtype, stacklevel: int) -> None:
    # whole numbers (counts stored as floats) lose nothing in float32
    warnings.warn(
        f"argument {label}: got {dtype} data, expected float64; the digits lost in "
        f"{dtype} are not recovered (jnp.asarray rounds to float32 while JAX's x64 is off: "
        "pass NumPy float64 arrays)",
        PrecisionWarning,
        stacklevel=stacklevel,
    )


def _raise_uint(label: str, dtype, largest: int):
    raise ValueError(
        f"argument {label}: expected integers that fit int64, got {dtype} values up to "
        f"{largest} (they would wrap around to negative numbers; convert explicitly)"
    )


def _convert(x, label: str) -> jax.Array:
    if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer):
        return _device_array(x, label)
    if hasattr(x, "to_numpy") and not isinstance(x, (np.ndarray, jax.Array)):
        _refuse_text_categorical(x, label)
        try:
            x = _pandas_to_numpy(x)
        except Exception as e:  # noqa: BLE001 - report any pandas conversion failure
            raise TypeError(f"argument {label}: expected numeric data, got {type(x).__name__} ({e})") from e
    a = np.asarray(x)
    return _private(a, _target_dtype(a, label))


def _refuse_text_categorical(x, label: str) -> None:
    """A pandas Categorical of text levels is not numbers: say what to pass instead."""
    import pandas as pd

    if not (isinstance(x, pd.Series) and isinstance(x.dtype, pd.CategoricalDtype)):
        return
    cats = x.cat.categories
    if pd.api.types.is_numeric_dtype(cats.dtype):
        return  # pandas reads it as its numeric values
    shown = ", ".join(map(repr, list(cats[:4]))) + (", …" if len(cats) > 4 else "")
    raise TypeError(
        f"argument {label}: expected a numeric or boolean array, got dtype category (a pandas "
        f"Categorical of {len(cats)} levels: {shown}); pass its codes (.cat.codes: 0 … "
        f"{len(cats) - 1}, −1 where missing) to index a plate, or indicator columns "
        "(pd.get_dummies) as covariates"
    )


def _target_dtype(a: np.ndarray, label: str, stacklevel: int = 6):
    """float64 (floating), int64 (integer) or bool; anything else is refused."""
    # dtype.kind, not np.issubdtype: NumPy counts timedelta64 as an integer type,
    # which would silently turn durations into counts of their unit.
    if a.dtype.kind == "b":
        return bool
    if a.dtype.kind == "f":
        if a.dtype.itemsize < 8 and a.size and not np.all(a == np.round(a)):
            _warn_precision(label, a.dtype, stacklevel + 1)
        return np.float64
    if a.dtype.kind in "iu":
        if a.dtype.kind == "u" and a.size and int(a.max()) > np.iinfo(np.int64).max:
            _raise_uint(label, a.dtype, int(a.max()))
        if a.size and max(abs(int(a.max())), abs(int(a.min()))) > 2**53:
            warnings.warn(
                f"argument {label}: got integers up to {max(abs(int(a.max())), abs(int(a.min()))):.3g}, "
                "expected at most 2^53 = 9.0e15 in magnitude: the likelihood is evaluated in "
                "float64, which cannot represent larger integers exactly (neighbouring counts "
                "become equal); rescale them or model them as continuous",
                PrecisionWarning,
                stacklevel=stacklevel + 1,
            )
        return np.int64
    raise TypeError(
        f"argument {label}: expected a numeric or boolean array, got dtype {a.dtype}"
        + (
            " (object arrays, e.g. pandas columns of mixed type, must be converted first)"
            if a.dtype == object
            else ""
        )
    )


def _pandas_to_numpy(x) -> np.ndarray:
    """A pandas object as NumPy; nullable numeric dtypes (``Float64``, ``Int64``, ``boolean``)
    become float64 with NaN for missing values, integers or bools when nothing is missing."""
    dtypes = list(x.dtypes) if hasattr(x, "dtypes") and not hasattr(x, "dtype") else [x.dtype]
    import pandas as pd

    numeric = all(pd.api.types.is_numeric_dtype(d) or pd.api.types.is_bool_dtype(d) for d in dtypes)
    if numeric and any(_nullable_numeric(d) for d in dtypes):
        out = x.to_numpy(dtype=np.float64, na_value=np.nan)
        kinds = {getattr(d, "kind", "f") for d in dtypes}
        if not np.isnan(out).any() and kinds <= {"i", "u", "b"}:
            return out.astype(np.int64 if kinds != {"b"} else bool)
        return out
    return x.to_numpy()


def _nullable_numeric(dtype) -> bool:
    """pandas' masked numeric or boolean extension dtypes (``Float64``, ``Int64``, ``boolean``)."""
    import pandas as pd

    return (
        isinstance(dtype, pd.api.extensions.ExtensionDtype)
        and not isinstance(dtype, pd.CategoricalDtype)
        and (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
    )


def _constant(x, label: str):
    """A private copy of an array argument held as a constant, of the caller's own type.

    NumPy and JAX arrays: float64 / int64 / bool as for traced data (a NumPy array stays
    NumPy, read-only; a non-numeric one, e.g. text labels, is copied as it is). pandas objects stay pandas (so ``df["age"]``, ``df.values`` and
    ``len(df)`` work): a deep copy whose numeric columns are float64 (floating; nullable
    ``Float64``/``Int64`` columns with missing values too, as NaN) or int64 (integer), and
    whose other columns (strings, categories, dates) are kept as they are.
    """
    if isinstance(x, jax.Array):
        return _convert(x, label)
    if isinstance(x, (np.ndarray, np.generic)):
        a = np.asarray(x)
        # text, dates, objects: the model's own business (e.g. group == "south"), kept as they are
        dtype = _target_dtype(a, label, stacklevel=7) if a.dtype.kind in "biuf" else a.dtype
        a = np.array(a, dtype=dtype, copy=True)
        a.flags.writeable = False
        return a
    import pandas as pd

    if isinstance(x, pd.Series):
        return _pandas_column(x, label)
    if isinstance(x, pd.DataFrame):
        out = x.copy(deep=True)
        for i, c in enumerate(x.columns):
            out.isetitem(i, _pandas_column(x.iloc[:, i], f"{label}[{c!r}]"))
        return out
    return x.copy(deep=True) if hasattr(x, "copy") else x


def _pandas_column(col, label: str):
    import pandas as pd

    d = col.dtype
    if not (pd.api.types.is_numeric_dtype(d) or pd.api.types.is_bool_dtype(d)) or isinstance(
        d, pd.CategoricalDtype
    ):
        return col.copy(deep=True)
    a = _pandas_to_numpy(col)
    return pd.Series(
        np.array(a, dtype=_target_dtype(a, label, stacklevel=8), copy=True),
        index=col.index.copy(),
        name=col.name,
    )


def _digest(x) -> tuple:
    """A fingerprint of a constant's content (part of the compilation key: a program compiled
    for one dataset must never serve another)."""
    h = hashlib.blake2b(digest_size=16)
    if isinstance(x, (np.ndarray, np.generic, jax.Array)):
        a = np.ascontiguousarray(np.asarray(x))
        h.update(f"{type(x).__name__}{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes() if a.dtype.kind != "O" else repr(a.tolist()).encode())
        return ("digest", h.hexdigest())
    try:
        import pandas as pd

        h.update(f"{type(x).__name__}{getattr(x, 'shape', '')}".encode())
        if isinstance(x, pd.DataFrame):
            h.update(repr((list(map(str, x.columns)), [str(t) for t in x.dtypes])).encode())
        elif isinstance(x, pd.Series):
            h.update(repr((str(x.name), str(x.dtype))).encode())
        h.update(pd.util.hash_pandas_object(x, index=True).to_numpy().tobytes())
        return ("digest", h.hexdigest())
    except Exception:  # noqa: BLE001 - unhashable content: identify the object itself
        return ("id", id(x))  # the held copy lives as long as any program keyed by it


def _labels(model: Callable, n_args: int, kw_names: list[str]) -> list[str]:
    try:
        params = list(inspect.signature(model).parameters.values())
    except (TypeError, ValueError):
        params = []
    pos = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    out = [f"'{pos[i]}'" if i < len(pos) else f"#{i} (positional)" for i in range(n_args)]
    return out + [f"'{k}'" for k in kw_names]


def _numeric_list(x) -> bool:
    """A (nested) list of Python numbers of one consistent nesting depth."""
    import numbers

    if isinstance(x, list):
        return all(_numeric_list(v) for v in x)
    return isinstance(x, numbers.Number) and not isinstance(x, complex)


def _hashable(x) -> bool:
    try:
        hash(x)
        return True
    except TypeError:
        return False


def split_inputs(model: Callable, args: tuple, kwargs: dict, *, constants: str = "") -> Inputs:
    """Split the model's arguments into array leaves and a static, hashable rest.

    ``constants`` (a reason, non-empty): hold the array arguments as constants
    instead (see the module docstring); there are then no leaves.
    """
    top_labels = _labels(model, len(args), list(kwargs))
    tops = list(args) + list(kwargs.values())
    leaves, labels, static = [], [], []
    structure = []
    for top, label in zip(tops, top_labels):
        if isinstance(top, list) and top and _numeric_list(top):
            top = np.asarray(top)  # a list of numbers is data, as NumPy would read it
        flat, treedef = jax.tree_util.tree_flatten(top, is_leaf=_is_array_like)
        kinds = []
        for j, leaf in enumerate(flat):
            lab = label if len(flat) == 1 else f"{label}[{j}]"
            if _is_array_like(leaf) and constants:
                c = _constant(leaf, lab)
                kinds.append(("const", lab, type(c).__name__, getattr(c, "shape", None), _digest(c)))
                static.append(c)
            elif _is_array_like(leaf):
                arr = _convert(leaf, lab)
                leaves.append(arr)
                labels.append(lab)
                kinds.append(("array", arr.shape, arr.dtype.str))
            else:
                ident = leaf if _hashable(leaf) else ("id", id(leaf))
                kinds.append(("static", type(leaf).__name__, ident))
                static.append(leaf)
        structure.append((treedef, tuple(kinds)))
    key = (len(args), tuple(kwargs), tuple(structure))
    spec = ArgSpec(len(args), tuple(kwargs), tuple(structure), tuple(static), constants)
    return Inputs(tuple(leaves), tuple(labels), key, spec)


def constant_arrays(spec: ArgSpec) -> list[tuple[str, np.ndarray]]:
    """The numeric arrays among the constants of ``spec``: (label, array), a DataFrame's
    numeric columns each on its own (label ``'df'['age']``)."""
    out = []
    static = list(spec.static)
    for _, kinds in spec.structure:
        for k in kinds:
            v = static.pop(0)
            if k[0] != "const":
                continue
            cols = [(k[1], v)]
            if hasattr(v, "columns") and hasattr(v, "dtypes"):
                cols = [(f"{k[1]}[{c!r}]", v[c]) for c in v.columns]
            for lab, c in cols:
                a = np.asarray(c.to_numpy() if hasattr(c, "to_numpy") else c)
                if a.dtype.kind in "biuf":
                    out.append((lab, a))
    return out
