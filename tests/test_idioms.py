"""NumPyro idioms and conveniences: named coordinates, the persistent compilation cache."""

from __future__ import annotations

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest

import mleppl
from mleppl import fit_mle


def regression(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


RNG = np.random.default_rng(5)
DF = pd.DataFrame({"age": RNG.normal(size=40), "dose": RNG.normal(size=40)})
Y = DF.to_numpy() @ np.array([1.0, -0.5]) + RNG.normal(size=40)


def test_coords_label_summary_intervals_and_datatree():
    res = fit_mle(regression, DF.to_numpy(), y=Y, coords={"beta": DF.columns})
    assert res.param_names == ["beta[age]", "beta[dose]", "sigma"]
    assert list(res.summary().index) == res.param_names
    assert list(res.conf_int(method="profile").index) == res.param_names
    dt = res.to_datatree(num_samples=5)
    assert list(dt.posterior["beta"].coords[dt.posterior["beta"].dims[-1]].values) == ["age", "dose"]
    plain = fit_mle(regression, DF.to_numpy(), y=Y)
    np.testing.assert_array_equal(plain.estimate, res.estimate)


@pytest.mark.parametrize(
    "coords, match",
    [
        ({"gamma": ["a", "b"]}, "unknown site 'gamma'"),
        ({"beta": ["a"]}, r"coords\['beta'\]: expected 2"),
        ({"sigma": ["a"]}, r"coords\['sigma'\]"),
        ({"beta": ["a", "a"]}, "distinct labels"),
    ],
)
def test_bad_coords_are_named(coords, match):
    with pytest.raises(ValueError, match=match):
        fit_mle(regression, DF.to_numpy(), y=Y, coords=coords)


def _cache_dir_in_fresh_process(env: dict) -> str:
    code = "import mleppl; print(mleppl.COMPILATION_CACHE_DIR)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION", "MLEPPL_"))}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def test_persistent_compilation_cache_is_on_by_default_with_an_opt_out(tmp_path):
    assert _cache_dir_in_fresh_process({"XDG_CACHE_HOME": str(tmp_path)}) == str(tmp_path / "mleppl" / "jax")
    assert _cache_dir_in_fresh_process({"MLEPPL_COMPILATION_CACHE": "0"}) == "None"
    mine = str(tmp_path / "mine")
    assert _cache_dir_in_fresh_process({"JAX_COMPILATION_CACHE_DIR": mine}) == mine


# ---------------------------------------------------------------- NumPy and pandas inside models
# Each idiom is a model written the way NumPyro's examples write it (NumPy on the data
# arguments, a DataFrame indexed by column), fitted unchanged, against the same model
# written with jax.numpy on plain arrays (the fast path, data traced).

N = 60
R = np.random.default_rng(13)
X1 = R.normal(size=N)
EXPOSURE = R.uniform(1.0, 5.0, N)
COUNTS = R.poisson(EXPOSURE * np.exp(0.3 + 0.5 * X1)).astype(float)
Y_MISSING = COUNTS.copy()
Y_MISSING[[3, 17, 40]] = np.nan
GROUP = np.array(["north", "south", "west"])[R.integers(0, 3, N)]
Y_GAUSS = 1.0 + 2.0 * np.maximum(X1, 0.0) + (GROUP == "south") * 0.7 + R.normal(scale=0.5, size=N)
FRAME = pd.DataFrame(
    {
        "x": X1,
        "exposure": EXPOSURE,
        "y": COUNTS,
        "age": R.normal(40, 10, N).astype(np.float32).round(),
        "group": GROUP,
    }
)
FRAME["sex"] = R.integers(0, 2, N)
Y_LIN = 0.5 + 0.03 * FRAME["age"].to_numpy() - 0.4 * FRAME["sex"].to_numpy() + R.normal(scale=0.3, size=N)
CODES = pd.factorize(GROUP, sort=True)[0]


def _ab():
    return numpyro.sample("a", dist.Normal(0, 5)), numpyro.sample("b", dist.Normal(0, 5))


def np_offset(x, exposure, y=None):
    a, b = _ab()
    with numpyro.plate("n", len(x)):
        numpyro.sample("y", dist.Poisson(jnp.exp(a + b * x + np.log(exposure))), obs=y)


def jnp_offset(x, exposure, y=None):
    a, b = _ab()
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Poisson(jnp.exp(a + b * x + jnp.log(exposure))), obs=y)


def np_mask(x, y=None):
    a, b = _ab()
    with numpyro.plate("n", len(x)):
        numpyro.sample("y", dist.Poisson(jnp.exp(a + b * x)), obs=np.nan_to_num(y), obs_mask=~np.isnan(y))


def jnp_mask(x, y=None):
    a, b = _ab()
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Poisson(jnp.exp(a + b * x)), obs=jnp.nan_to_num(y), obs_mask=~jnp.isnan(y))


def df_columns(df):
    a, b = _ab()
    with numpyro.plate("n", len(df)):
        rate = df["exposure"].to_numpy() * jnp.exp(a + b * df["x"].to_numpy())
        numpyro.sample("y", dist.Poisson(rate), obs=df["y"].to_numpy())


def jnp_columns(x, exposure, y):
    a, b = _ab()
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Poisson(exposure * jnp.exp(a + b * x)), obs=y)


def df_shape_values(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Normal(X.values @ beta, sigma), obs=y)


def np_where(x, group, y=None):
    a = numpyro.sample("a", dist.Normal(0, 5))
    b = numpyro.sample("b", dist.Normal(0, 5))
    c = numpyro.sample("c", dist.Normal(0, 5))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    hinge = np.where(x > 0, x, 0.0)
    with numpyro.plate("n", len(x)):
        numpyro.sample("y", dist.Normal(a + b * hinge + c * (group == "south"), sigma), obs=y)


def jnp_where(x, south, y=None):
    a = numpyro.sample("a", dist.Normal(0, 5))
    b = numpyro.sample("b", dist.Normal(0, 5))
    c = numpyro.sample("c", dist.Normal(0, 5))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Normal(a + b * jnp.where(x > 0, x, 0.0) + c * south, sigma), obs=y)


def branch_on_data(x, y=None):
    a, b = _ab()
    rate = jnp.exp(a + b * x)
    if (y == 0).any():  # a data-dependent Python branch (ConcretizationTypeError when traced)
        rate = rate + 0.0
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Poisson(rate), obs=y)


def jnp_poisson(x, y=None):
    a, b = _ab()
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Poisson(jnp.exp(a + b * x)), obs=y)


def df_groups(df, y=None):
    codes, names = pd.factorize(df["group"], sort=True)  # a text column: the model codes it
    alpha = numpyro.sample("alpha", dist.Normal(0, 10).expand([len(names)]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("n", len(df)):
        numpyro.sample("y", dist.Normal(alpha[codes] + 2.0 * np.maximum(df.x.to_numpy(), 0), sigma), obs=y)


def jnp_groups(x, codes, y=None):
    alpha = numpyro.sample("alpha", dist.Normal(0, 10).expand([3]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Normal(alpha[codes] + 2.0 * jnp.maximum(x, 0), sigma), obs=y)


LIN = FRAME[["age", "sex"]].assign(one=1.0)[["one", "age", "sex"]]
IDIOMS = {
    # name: (idiom model, its args, kwargs, equivalent jnp model, its args, kwargs)
    "np.log offset": (np_offset, (X1, EXPOSURE), {"y": COUNTS}, jnp_offset, (X1, EXPOSURE), {"y": COUNTS}),
    "obs_mask=~np.isnan(y)": (np_mask, (X1,), {"y": Y_MISSING}, jnp_mask, (X1,), {"y": Y_MISSING}),
    'df["col"]': (df_columns, (FRAME,), {}, jnp_columns, (X1, EXPOSURE, COUNTS), {}),
    "df.shape, X.values": (
        df_shape_values,
        (LIN,),
        {"y": Y_LIN},
        regression,
        (LIN.to_numpy(dtype=np.float64),),
        {"y": Y_LIN},
    ),
    "np.where on data, a text array compared": (
        np_where,
        (X1, GROUP),
        {"y": Y_GAUSS},
        jnp_where,
        (X1, (GROUP == "south").astype(float)),
        {"y": Y_GAUSS},
    ),
    "branch on data values": (branch_on_data, (X1,), {"y": COUNTS}, jnp_poisson, (X1,), {"y": COUNTS}),
    "pd.factorize a text column, df.x": (
        df_groups,
        (FRAME,),
        {"y": Y_GAUSS},
        jnp_groups,
        (X1, CODES),
        {"y": Y_GAUSS},
    ),
}


@pytest.mark.parametrize("idiom", list(IDIOMS))
def test_numpy_and_pandas_idioms_fit_as_their_jnp_equivalent(idiom):
    model, args, kwargs, ref_model, ref_args, ref_kwargs = IDIOMS[idiom]
    res = fit_mle(model, *args, **kwargs)
    ref = fit_mle(ref_model, *ref_args, **ref_kwargs)
    assert res.data_as_constants and not ref.data_as_constants
    assert res.converged and ref.converged
    assert res.param_names == ref.param_names
    np.testing.assert_allclose(res.estimate, ref.estimate, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-8)
    np.testing.assert_allclose(res.loglik, ref.loglik, rtol=1e-12)
    assert res.nobs == ref.nobs


@pytest.fixture(scope="module")
def masked_pair():
    return fit_mle(np_mask, X1, y=Y_MISSING), fit_mle(jnp_mask, X1, y=Y_MISSING)


@pytest.fixture(scope="module")
def frame_pair():
    return fit_mle(df_groups, FRAME, y=Y_GAUSS), fit_mle(jnp_groups, X1, CODES, y=Y_GAUSS)


def _close(a, b, rtol=1e-8):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=1e-10)


@pytest.mark.parametrize("pair", ["masked_pair", "frame_pair"])
def test_constants_mode_summary_robust_and_profile_match_the_fast_path(pair, request):
    res, ref = request.getfixturevalue(pair)
    _close(res.summary().to_numpy(), ref.summary().to_numpy())
    _close(res.with_cov("hc0").cov, ref.with_cov("hc0").cov)
    groups = np.arange(N) % 7
    _close(res.with_cov("cluster", groups=groups).cov, ref.with_cov("cluster", groups=groups).cov)
    _close(res.conf_int(method="profile").to_numpy(), ref.conf_int(method="profile").to_numpy())


@pytest.mark.parametrize("kind", ["nonparametric", "parametric"])
def test_constants_mode_bootstrap_refits_resampled_and_simulated_data(masked_pair, kind):
    res, ref = masked_pair
    boot = mleppl.bootstrap(res, 40, kind=kind, rng_key=3)
    want = mleppl.bootstrap(ref, 40, kind=kind, rng_key=3)
    assert boot.n_failed == 0
    _close(boot.flat, want.flat)
    # the refits saw new data (a parametric refit of the constant observed values would
    # reproduce the estimate every time): their spread is the sampling variability
    spread = boot.flat.std(axis=0) / res.bse
    assert np.all((spread > 0.5) & (spread < 2.0)), spread


def test_constants_mode_predictive_datatree_and_ppc_with_new_data(frame_pair, tmp_path):
    res, ref = frame_pair
    new = FRAME.iloc[:25]
    draws = res.predictive(0, new, num_samples=50)
    want = ref.predictive(0, X1[:25], CODES[:25], num_samples=50)
    _close(draws["y"], want["y"])
    # plug-in replicates (draws from N(ẑ, Σ) depend on an eigenbasis, not unique for equal variances)
    dt, dt_ref = (r.to_datatree(num_samples=30, uncertainty=False) for r in (res, ref))
    _close(dt.posterior_predictive["y"].values, dt_ref.posterior_predictive["y"].values)
    _close(dt.log_likelihood["y"].values, dt_ref.log_likelihood["y"].values)
    # the DataFrame's numeric columns are the constant data (its text column is not)
    assert {"df_x", "df_exposure", "df_age"} <= set(dt.constant_data.data_vars)
    assert "df_group" not in dt.constant_data.data_vars
    pc = mleppl.plot_ppc(res, new, y=Y_GAUSS[:25], num_samples=20, path=tmp_path / "ppc.png")
    assert type(pc).__name__ == "PlotCollection" and (tmp_path / "ppc.png").exists()


def test_constants_mode_never_reuses_a_program_compiled_for_other_data():
    other = R.poisson(EXPOSURE * np.exp(0.1 - 0.4 * X1)).astype(float)
    first = fit_mle(np_offset, X1, EXPOSURE, y=COUNTS)
    second = fit_mle(np_offset, X1, EXPOSURE, y=other)  # same shapes, new values
    _close(second.estimate, fit_mle(jnp_offset, X1, EXPOSURE, y=other).estimate)
    assert abs(second.params["b"] - first.params["b"]) > 0.5
    again = fit_mle(np_offset, X1, EXPOSURE, y=COUNTS.copy())  # the same data: same answer
    np.testing.assert_array_equal(again.estimate, first.estimate)


def test_constants_mode_is_said_once_and_the_fast_path_says_nothing(caplog):
    def local_offset(x, exposure, y=None):  # a fresh model object
        np_offset(x, exposure, y)

    with caplog.at_level("INFO", logger="mleppl"):
        fit_mle(jnp_offset, X1, EXPOSURE, y=COUNTS)
        assert not [r for r in caplog.records if r.name == "mleppl"]
        fit_mle(local_offset, X1, EXPOSURE, y=COUNTS)
        fit_mle(local_offset, X1, EXPOSURE, y=COUNTS + 1.0)
    notes = [r.getMessage() for r in caplog.records if r.name == "mleppl"]
    assert len(notes) == 1
    assert "TracerArrayConversionError" in notes[0] and "every new dataset compiles" in notes[0]


def test_constants_mode_fit_many_refuses_clearly():
    ys = np.stack([COUNTS, COUNTS[::-1]])
    with pytest.raises(ValueError, match="model: fit_many batches the datasets.*fit_mle in a loop"):
        mleppl.fit_many(np_offset, X1, EXPOSURE, y=ys)


def test_constants_mode_result_pickles_with_its_data(masked_pair):
    import pickle

    res, ref = masked_pair
    back = pickle.loads(pickle.dumps(res))
    assert back.data_as_constants
    _close(back.with_cov("hc0").cov, ref.with_cov("hc0").cov)


def test_the_callers_data_are_copied_and_a_non_numeric_argument_the_model_cannot_use_is_named():
    frame = FRAME.copy()
    res = fit_mle(df_columns, frame)
    frame.loc[:, "y"] = 0.0  # editing the caller's frame afterwards changes nothing
    _close(res.with_cov("hc0").estimate, fit_mle(jnp_columns, X1, EXPOSURE, COUNTS).estimate)

    def uses_labels_as_numbers(g, y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 5))
        numpyro.sample("y", dist.Normal(mu + jnp.asarray(g), 1.0), obs=y)

    with pytest.raises(
        TypeError, match=r"argument 'g': expected a numeric or boolean array.*held as a constant"
    ):
        fit_mle(uses_labels_as_numbers, GROUP, y=Y_GAUSS)
