"""NumPyro idioms and conveniences: named coordinates, the persistent compilation cache."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest

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
