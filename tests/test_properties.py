"""Property-based tests of the input boundary (issue 7, item 5).

Every bad input gets a clear error naming the argument or site, or a documented
correct behaviour; for every input, accepted or rejected, the caller's arrays are
bitwise unchanged, the model is untouched and ``jax_enable_x64`` is as it was;
accepted inputs give float64 results. ``docs/guide/bad_input.md`` is the table
of what these tests assert. They complement the examples in
``test_bad_input.py``.

Fits compile once per model, shapes and leaf dtypes (float64 / int64 / bool),
so shapes are fixed (``N`` rows) and hypothesis varies values, positions,
dtypes and containers. The models have a fixed scale, so the MLE is least
squares: a closed form for every data set hypothesis can draw.
"""

from __future__ import annotations

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import mleppl
from mleppl import HessianWarning, MLEWarning, fit_mle

N = 12
X_BASE = np.column_stack([np.ones(N), np.arange(N, dtype=float)])
Y_BASE = 3.0 * np.sin(np.arange(N, dtype=float))
# Two closed-form fits of the same float64 data agree to rounding (EXACT tier of conftest).
EXACT = 1e-10

# Deterministic, no example database written into the repository, no deadline (a
# first example compiles).
few = settings(derandomize=True, database=None, deadline=None, max_examples=8)
some = settings(derandomize=True, database=None, deadline=None, max_examples=20)
many = settings(derandomize=True, database=None, deadline=None, max_examples=40)


def loc(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([2]).to_event(1))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def masked(X, mask, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([2]).to_event(1))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y, obs_mask=mask)


def with_unused(X, unused, y=None):
    loc(X, y)


def lstsq(X, y):
    return np.linalg.lstsq(np.asarray(X, dtype=float), np.asarray(y, dtype=float), rcond=None)[0]


# ---------------------------------------------------------------------------
# The invariants, checked around every call in this file.


def _arrays(tree) -> list:
    leaves = jax.tree_util.tree_leaves(
        tree, is_leaf=lambda x: isinstance(x, (np.ndarray, pd.DataFrame, pd.Series))
    )
    out = []
    for x in leaves:
        if isinstance(x, np.ndarray):
            out.append(x)
            if x.base is not None and isinstance(x.base, np.ndarray):
                out.append(x.base)  # a view: the memory it looks into must be unchanged too
        elif isinstance(x, (pd.DataFrame, pd.Series)):
            out.append(x)
    return out


def _snapshot(x):
    if isinstance(x, np.ndarray):
        return x.tobytes(order="A"), x.dtype, x.shape, x.strides, x.flags.writeable
    return x.copy(deep=True)


def _unchanged(x, snap) -> None:
    if isinstance(x, np.ndarray):
        assert (x.tobytes(order="A"), x.dtype, x.shape, x.strides, x.flags.writeable) == snap
    elif isinstance(x, pd.DataFrame):
        pd.testing.assert_frame_equal(x, snap, check_exact=True)
    else:
        pd.testing.assert_series_equal(x, snap, check_exact=True)


def fit(model, *args, **kwargs):
    """``fit_mle`` with the invariants asserted, whether it returns or raises."""
    arrays = _arrays((args, kwargs))
    snaps = [_snapshot(a) for a in arrays]
    model_state = (model.__code__, model.__defaults__, model.__kwdefaults__, dict(model.__dict__))
    x64 = jax.config.jax_enable_x64
    try:
        res = fit_mle(model, *args, **kwargs)
    finally:
        assert jax.config.jax_enable_x64 == x64
        for a, s in zip(arrays, snaps):
            _unchanged(a, s)
        assert (model.__code__, model.__defaults__, model.__kwdefaults__, dict(model.__dict__)) == model_state
    for name in res.params:
        assert res.params[name].dtype == np.float64 and res.se[name].dtype == np.float64
    assert res.cov.dtype == np.float64 and isinstance(res.loglik, float)
    return res


# ---------------------------------------------------------------------------
# NaN / inf


def _place(base, positions, values):
    out = base.copy()
    flat = out.reshape(-1)
    for i, v in zip(positions, values):
        flat[i] = v
    return out


nonfinite = st.sampled_from([np.nan, np.inf, -np.inf])


@many
@given(
    xpos=st.sets(st.integers(0, 2 * N - 1), max_size=4),
    ypos=st.sets(st.integers(0, N - 1), max_size=4),
    data=st.data(),
)
def test_nonfinite_anywhere_names_the_argument_or_site(xpos, ypos, data):
    assume(xpos or ypos)
    X = _place(X_BASE, sorted(xpos), data.draw(st.lists(nonfinite, min_size=len(xpos), max_size=len(xpos))))
    y = _place(Y_BASE, sorted(ypos), data.draw(st.lists(nonfinite, min_size=len(ypos), max_size=len(ypos))))
    if xpos:  # the covariate makes the model itself fail: every non-finite argument is named, with counts
        named = f"'X' \\({len(xpos)} NaN/inf\\)" + (f", 'y' \\({len(ypos)} NaN/inf\\)" if ypos else "")
        pattern = (
            rf"expected finite covariates, got non-finite values in argument\(s\) {named} \(drop or impute"
        )
    else:
        pattern = rf"observed site 'y': expected finite data, got {len(ypos)} NaN/inf value\(s\)"
    with pytest.raises(ValueError, match=pattern):
        fit(loc, X, y=y)


@some
@given(
    mask=st.lists(st.booleans(), min_size=N, max_size=N),
    bad=st.sets(st.integers(0, N - 1), max_size=5),
    value=nonfinite,
)
def test_nonfinite_observations_are_fine_exactly_where_masked(mask, bad, value):
    mask = np.array(mask)
    assume(mask.sum() >= 2)  # two distinct rows identify the line
    y = _place(Y_BASE, sorted(bad), [value] * len(bad))
    unmasked_bad = int(sum(mask[i] for i in bad))
    if unmasked_bad:
        with pytest.raises(
            # the user's name 'y', not NumPyro's internal 'y_observed'
            ValueError,
            match=rf"observed site 'y': expected finite data, got {unmasked_bad} ",
        ):
            fit(masked, X_BASE, mask, y=y)
        return
    res = fit(masked, X_BASE, mask, y=y)
    assert res.converged and res.nobs == mask.sum()
    np.testing.assert_allclose(res.params["beta"], lstsq(X_BASE[mask], Y_BASE[mask]), rtol=EXACT, atol=EXACT)


@few
@given(unused=st.lists(st.one_of(nonfinite, st.floats(-1e3, 1e3)), min_size=3, max_size=3))
def test_nonfinite_argument_that_never_reaches_the_likelihood_is_ignored(unused):
    res = fit(with_unused, X_BASE, np.array(unused), y=Y_BASE)
    np.testing.assert_allclose(res.params["beta"], lstsq(X_BASE, Y_BASE), rtol=EXACT, atol=EXACT)


# ---------------------------------------------------------------------------
# Empty data


def _assert_explained(caught) -> None:
    """A HessianWarning naming 'mu' (NaN standard error) and a warning that says why:
    ConvergenceWarning, or a more specific MLEWarning (e.g. a flat direction)."""
    hess = [w for w in caught if w.category is HessianWarning]
    assert hess and "standard errors of ['mu'] are NaN" in str(hess[0].message)
    why = [w for w in caught if issubclass(w.category, MLEWarning) and w.category is not HessianWarning]
    assert why, [str(w.message) for w in caught]


def test_empty_plate_is_reported_by_numpyro_through_the_wrapper():
    with pytest.raises(
        AssertionError, match=r"the model raised AssertionError .*size of plate should be positive"
    ):
        fit(loc, X_BASE[:0], y=Y_BASE[:0])


def test_everything_masked_is_empty_data():
    with pytest.raises(
        ValueError, match=r"the data are empty: expected at least one \(unmasked\) observation, got 0"
    ):
        fit(masked, X_BASE, np.zeros(N, bool), y=Y_BASE)


def test_empty_observed_vector_without_a_plate_is_never_a_confident_number():
    """Zero observations in an event dimension: no information about ``mu``: a clear error."""

    def vec(y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 10))
        numpyro.sample("y", dist.Normal(mu, 1).expand([y.shape[0]]).to_event(1), obs=y)

    with pytest.raises(ValueError, match="the data are empty"):
        fit(vec, y=np.zeros(0))


# ---------------------------------------------------------------------------
# Dtypes

NUMERIC = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64]
NUMERIC += [np.uint8, np.uint16, np.uint32, np.uint64, bool, ">f8", ">i4"]


@many
@given(
    xdtype=st.sampled_from(NUMERIC),
    ydtype=st.sampled_from(NUMERIC),
    x=st.lists(st.integers(0, 3), min_size=N, max_size=N),
    y=st.lists(st.integers(0, 3), min_size=N, max_size=N),
)
def test_numeric_and_bool_dtypes_are_converted_exactly(xdtype, ydtype, x, y):
    """Small integers are exact in every dtype: the fit equals least squares on their values."""
    x, y = np.array(x), np.array(y)
    if xdtype is bool:
        x = x > 1
    if ydtype is bool:
        y = y > 1
    assume(len(set(x.tolist())) > 1)  # a full-rank design
    X = np.column_stack([np.ones(N), x]).astype(xdtype)
    Y = y.astype(ydtype)
    res = fit(loc, X, y=Y)
    assert res.converged
    np.testing.assert_allclose(res.params["beta"], lstsq(X, Y), rtol=1e-8, atol=1e-10)


def _pandas(a):
    return pd.DataFrame(a) if a.ndim == 2 else pd.Series(a)


REJECTED = {
    "complex128": lambda a: a.astype(np.complex128),
    "complex64": lambda a: a.astype(np.complex64),
    "object": lambda a: a.astype(object),
    "str": lambda a: a.astype(str),
    "bytes": lambda a: a.astype(bytes),
    "datetime64": lambda a: a.astype(np.int64).astype("datetime64[D]"),
    "timedelta64": lambda a: a.astype(np.int64).astype("timedelta64[s]"),
    "pandas object": lambda a: _pandas(a.astype(object)),
    "pandas category of strings": lambda a: _pandas(a.astype(str)).astype("category"),
}


@some
@given(kind=st.sampled_from(sorted(REJECTED)), which=st.sampled_from(["X", "y"]))
def test_non_numeric_dtypes_are_rejected_naming_the_argument(kind, which):
    X, y = X_BASE, Y_BASE
    if which == "X":
        X = REJECTED[kind](X)
    else:
        y = REJECTED[kind](y)
    with pytest.raises(
        TypeError, match=rf"argument '{which}': expected a numeric or boolean array, got dtype"
    ):
        fit(loc, X, y=y)


@few
@given(big=st.integers(2**63, 2**64 - 1), pos=st.integers(0, N - 1))
def test_uint64_beyond_int64_is_rejected_not_wrapped(big, pos):
    y = np.ones(N, dtype=np.uint64)
    y[pos] = big
    with pytest.raises(
        ValueError, match=rf"argument 'y': expected integers that fit int64, got uint64 values up to {big}"
    ):
        fit(loc, X_BASE, y=y)


# ---------------------------------------------------------------------------
# pandas


@some
@given(
    y=st.lists(st.floats(-100, 100), min_size=N, max_size=N),
    xindex=st.permutations(range(N)),
    yindex=st.permutations(range(10, 10 + N)),
    int_column=st.booleans(),
)
def test_pandas_inputs_match_numpy_by_position(y, xindex, yindex, int_column):
    """DataFrame/Series give the NumPy result exactly; indexes are ignored (no alignment)."""
    y = np.array(y)
    frame = pd.DataFrame(
        {"const": np.ones(N, dtype=int if int_column else float), "x": X_BASE[:, 1]}, index=xindex
    )
    res_pd = fit(loc, frame, y=pd.Series(y, index=yindex))
    res_np = fit(loc, X_BASE, y=y)
    np.testing.assert_array_equal(res_pd.params["beta"], res_np.params["beta"])
    np.testing.assert_array_equal(res_pd.se["beta"], res_np.se["beta"])


@few
@given(
    missing=st.sets(st.integers(0, N - 1), min_size=1, max_size=4),
    dtype=st.sampled_from(["Float64", "Int64"]),
)
def test_pandas_missing_values_are_nonfinite_data(missing, dtype):
    y = pd.Series(np.round(Y_BASE)).astype(dtype)
    y[sorted(missing)] = pd.NA
    with pytest.raises(
        ValueError, match=rf"observed site 'y': expected finite data, got {len(missing)} NaN/inf"
    ):
        fit(loc, X_BASE, y=y)


# ---------------------------------------------------------------------------
# Shapes

y_shapes = st.one_of(
    st.integers(0, 2 * N).filter(lambda m: m != N).map(lambda m: (m,)),
    st.sampled_from([(), (1,), (N, 1), (1, N), (N, 2), (2, N)]),
)


@some
@given(shape=y_shapes)
def test_observed_data_of_the_wrong_shape_is_rejected(shape):
    """Including shapes that NumPy would silently broadcast against the plate."""
    y = np.resize(Y_BASE, shape)
    got = re.escape(str(shape))
    with pytest.raises(
        ValueError, match=rf"observed site 'y': expected data of shape \({N},\) .* got shape {got}"
    ):
        fit(loc, X_BASE, y=y)


@few
@given(rows=st.integers(1, 2 * N).filter(lambda m: m != N))
def test_covariate_rows_disagreeing_with_the_data_are_rejected(rows):
    X = np.resize(X_BASE, (rows, 2))
    with pytest.raises(
        ValueError, match=rf"observed site 'y': expected data of shape \({rows},\) .* got shape \({N},\)"
    ):
        fit(loc, X, y=Y_BASE)


# ---------------------------------------------------------------------------
# Options and models


FIT_OPTIONS = {"method", "init", "rng_key", "max_steps", "tol", "n_starts", "X", "y"}


@some
@given(
    name=st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(lambda s: s not in FIT_OPTIONS),
    value=st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=5)),
)
def test_unknown_option_names_go_to_the_model(name, value):
    with pytest.raises(
        TypeError,
        match=rf"the model raised TypeError while being traced with the given data: .*unexpected keyword argument '{name}'",
    ):
        fit(loc, X_BASE, y=Y_BASE, **{name: value})


bad_options = st.one_of(
    st.text(max_size=8)
    .filter(lambda s: s not in ("auto", "newton", "lbfgs", "lbfgs-newton"))
    .map(lambda v: ("method", v, ValueError)),
    st.integers(-3, 0).map(lambda v: ("max_steps", v, ValueError)),
    st.floats(0.5, 10.5).filter(lambda v: v != int(v)).map(lambda v: ("max_steps", v, ValueError)),
    st.one_of(st.floats(max_value=0.0), st.sampled_from([np.nan, np.inf])).map(
        lambda v: ("tol", v, ValueError)
    ),
    st.one_of(st.lists(st.floats(), max_size=2), st.floats(), st.text(max_size=3)).map(
        lambda v: ("init", v, TypeError)
    ),
)


@some
@given(option=bad_options)
def test_bad_option_values_are_rejected_before_tracing(option):
    name, value, exc = option
    with pytest.raises(exc, match=rf"^{name}: expected "):
        fit(loc, X_BASE, y=Y_BASE, **{name: value})


class OddConstructor(Exception):
    def __init__(self, a, b):
        super().__init__(a, b)


RAISED = [
    ValueError,
    KeyError,
    RuntimeError,
    ZeroDivisionError,
    IndexError,
    AssertionError,
    NotImplementedError,
]


@some
@given(cls=st.sampled_from(RAISED + [OddConstructor]), text=st.text(max_size=20))
def test_a_model_that_raises_keeps_its_exception_class(cls, text):
    raised = OddConstructor(text, 1) if cls is OddConstructor else cls(text)

    def broken(X, y=None):
        raise raised

    expected = RuntimeError if cls is OddConstructor else cls
    with pytest.raises(expected) as info:
        fit(broken, X_BASE, y=Y_BASE)
    assert type(info.value) is expected
    assert (
        str(info.value)
        .strip("'\"")
        .startswith(f"the model raised {cls.__name__} while being traced with the given data: ")
    )
    assert info.value.__cause__ is raised


def test_a_model_that_raises_only_inside_the_compiled_fit_propagates_its_error():
    calls = []

    def later(X, y=None):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("only on the second call")
        loc(X, y)

    # raised inside the compiled program: JAX may append its traceback-filtering note
    with pytest.raises(RuntimeError, match=r"^only on the second call"):
        fit(later, X_BASE, y=Y_BASE)


def test_python_control_flow_on_a_parameter_is_a_jax_tracer_error():
    def branchy(X, y=None):
        beta = numpyro.sample("beta", dist.Normal(0, 10).expand([2]).to_event(1))
        if beta[0] > 0:  # concrete in the first trace, abstract in the compiled fit
            beta = 2 * beta
        with numpyro.plate("obs", X.shape[0]):
            numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)

    with pytest.raises(jax.errors.TracerBoolConversionError):
        fit(branchy, X_BASE, y=Y_BASE)


# ---------------------------------------------------------------------------
# Likelihoods that are not differentiable


def _scalar_model(transform, family=dist.Normal):
    def model(y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 10))
        with numpyro.plate("obs", y.shape[0]):
            numpyro.sample("y", family(transform(mu), 1.0), obs=y)

    return model


NON_DIFFERENTIABLE = {
    "round": _scalar_model(jnp.round),
    "floor": _scalar_model(jnp.floor),
    "integer cast": _scalar_model(lambda m: m.astype(jnp.int32)),
    "stop_gradient": _scalar_model(jax.lax.stop_gradient),
    "step function": _scalar_model(lambda m: jnp.where(m > 0, 1.0, -1.0)),
    # differentiable almost everywhere, but zero curvature: Newton has nothing to go on
    "piecewise linear (Laplace)": _scalar_model(lambda m: m, dist.Laplace),
}


@pytest.mark.parametrize("kind", sorted(NON_DIFFERENTIABLE))
@settings(derandomize=True, database=None, deadline=None, max_examples=4)
@given(y=st.lists(st.floats(-50, 50), min_size=N, max_size=N))
def test_non_differentiable_likelihood_is_never_reported_as_converged(kind, y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fit(NON_DIFFERENTIABLE[kind], y=np.array(y))
    assert not res.converged
    assert np.isnan(res.se["mu"])
    _assert_explained(caught)


# ---------------------------------------------------------------------------
# Layouts and containers of accepted inputs; the global JAX configuration


def _strided(a):
    big = np.zeros(tuple(2 * s for s in a.shape))
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    return view


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


LAYOUTS = {
    "copy": np.copy,
    "read-only": _readonly,
    "Fortran order": np.asfortranarray,
    "strided view": _strided,
    "reversed view": lambda a: np.ascontiguousarray(a[::-1])[::-1],
    "big-endian": lambda a: a.astype(">f8"),
    "jax": jnp.asarray,
    "pandas": _pandas,
    "inside a dict": lambda a: {"a": a.copy()},
}


def _dict_loc(X, y=None):
    X = X["a"] if isinstance(X, dict) else X
    y = y["a"] if isinstance(y, dict) else y
    loc(X, y)


@some
@given(xlayout=st.sampled_from(sorted(LAYOUTS)), ylayout=st.sampled_from(sorted(LAYOUTS)), x64=st.booleans())
def test_accepted_layouts_give_the_same_fit_and_leave_everything_as_it_was(xlayout, ylayout, x64):
    """Read-only, non-contiguous, byte-swapped, JAX, pandas and nested inputs; x64 on or off."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", x64)
    try:
        X, y = LAYOUTS[xlayout](X_BASE), LAYOUTS[ylayout](Y_BASE)  # jnp.asarray is float32 without x64
        expected = lstsq(*(np.asarray(a["a"] if isinstance(a, dict) else a) for a in (X, y)))
        with warnings.catch_warnings():  # float32 JAX input warns (tested in test_honesty.py)
            warnings.simplefilter("ignore", mleppl.PrecisionWarning)
            res = fit(_dict_loc, X, y=y)
            # the invariants inside fit() include the x64 flag, in either state
            assert jax.config.jax_enable_x64 == x64
            with pytest.raises(ValueError, match="expected finite data"):
                fit(_dict_loc, LAYOUTS[xlayout](X_BASE), y=LAYOUTS[ylayout](np.full(N, np.nan)))
            assert jax.config.jax_enable_x64 == x64
    finally:
        jax.config.update("jax_enable_x64", before)
    np.testing.assert_allclose(res.params["beta"], expected, rtol=EXACT, atol=EXACT)


@pytest.mark.parametrize("after_refused_text_data", [False, True])
def test_the_result_does_not_alias_the_callers_arrays(after_refused_text_data):
    """Mutating the data after the fit changes nothing the (immutable) result computes
    (JAX's device_put(may_alias=False) aliased the caller's buffer after a refused fit)."""
    if after_refused_text_data:
        with pytest.raises(TypeError, match="argument 'y'"):
            fit(loc, X_BASE, y=Y_BASE.astype(str))
    X, y = X_BASE.copy(), Y_BASE.copy()
    res = fit(loc, X, y=y)
    se_before = np.array(res.with_cov("opg").se["beta"])
    X *= 2.0
    y += 5.0
    np.testing.assert_array_equal(res.with_cov("opg").se["beta"], se_before)


# ---------------------------------------------------------------------------
# Current behaviour with known weaknesses (reported; see docs/guide/bad_input.md)


def bern(y=None):
    p = numpyro.sample("p", dist.Beta(1, 1))
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Bernoulli(p), obs=y)


@pytest.mark.parametrize("outside", [0.5, 2.0, -1.0])
def test_data_outside_the_support_is_an_error(outside):
    """Checked at the boundary, naming the site, the support and an offending value."""
    y = np.array([1.0, 0.0, 1.0, outside])
    with pytest.raises(
        ValueError,
        match=rf"observed site 'y': expected data inside the support .* got 1 value\(s\) outside .*{outside}.*Bernoulli",
    ):
        fit(bern, y=y)


def test_a_python_list_of_numbers_is_data():
    """A (nested) list of numbers is read as an array, as NumPy would."""
    res = fit(loc, X_BASE.tolist(), y=list(Y_BASE))
    np.testing.assert_allclose(res.params["beta"], lstsq(X_BASE, Y_BASE), rtol=EXACT, atol=EXACT)


def test_pandas_categoricals_of_numbers_and_mixed_frames():
    numbers = pd.Series(pd.Categorical(Y_BASE))  # pandas converts it to its numeric values
    res = fit(loc, X_BASE, y=numbers)
    np.testing.assert_allclose(res.params["beta"], lstsq(X_BASE, Y_BASE), rtol=EXACT, atol=EXACT)
    mixed = pd.DataFrame({"const": np.ones(N), "group": list("ab") * (N // 2)})
    with pytest.raises(TypeError, match=r"argument 'X': .* got dtype object \(object arrays"):
        fit(loc, mixed, y=Y_BASE)


def test_a_model_taking_kwargs_receives_unknown_names_silently():
    def open_model(X, y=None, **extra):
        loc(X, y)

    res = fit(open_model, X_BASE, y=Y_BASE, max_step=3)  # a misspelt option, swallowed by **extra
    assert res.converged
