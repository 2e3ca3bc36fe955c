"""Reporting of masked observations and of untrustworthy fits (issue 21).

(A) A model with ``handlers.mask`` or ``obs_mask`` exports a DataTree whose observed site
keeps the model's name (``y``, never NumPyro's ``y_observed``) and only the observed
entries, on the dim ``y_obs`` with the original row numbers as coordinates, the same way
in ``observed_data``, ``log_likelihood`` and ``posterior_predictive``; LOO and plot_ppc
work on it.

(B) ``summary()`` of a fit that did not converge or was flagged carries its mark whenever
the table is printed, while staying a DataFrame.

Tolerances: EXACT for the same log-likelihood summed two ways in float64.
"""

from __future__ import annotations

import io
import warnings

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest
from conftest import EXACT
from numpyro import handlers

import mleppl
from mleppl import ConvergenceWarning, MLEWarning, fit_mle

# ----------------------------------------------------------------- (A) masked observations
N = 40
RNG = np.random.default_rng(1)
X = RNG.normal(size=N)
Y = 1 + X + RNG.normal(size=N)
MASK = np.ones(N, bool)
MASK[:5] = False
MASK[17] = False
KEPT = np.flatnonzero(MASK)


def handler_masked(x, y=None, mask=None):
    a = numpyro.sample("a", dist.Normal(0, 10))
    s = numpyro.sample("s", dist.HalfNormal(5))
    with numpyro.plate("n", len(x)), handlers.mask(mask=mask):
        numpyro.sample("y", dist.Normal(a + x, s), obs=y)


def obs_masked(x, y=None, mask=None):
    a = numpyro.sample("a", dist.Normal(0, 10))
    s = numpyro.sample("s", dist.HalfNormal(5))
    with numpyro.plate("n", len(x)):
        numpyro.sample("y", dist.Normal(a + x, s), obs=y, obs_mask=mask)


MASKED_MODELS = pytest.mark.parametrize(
    "model", [handler_masked, obs_masked], ids=["handlers.mask", "obs_mask"]
)


@pytest.fixture(scope="module")
def masked_fits():
    return {m.__name__: fit_mle(m, X, y=Y, mask=MASK) for m in (handler_masked, obs_masked)}


@MASKED_MODELS
def test_masked_site_keeps_its_name_and_only_observed_rows(masked_fits, model):
    res = masked_fits[model.__name__]
    assert res.nobs == MASK.sum()
    dt = res.to_datatree(num_samples=200)
    for g in ("observed_data", "log_likelihood", "posterior_predictive"):
        assert set(dt[g].data_vars) == {"y"}, g  # the model's name, not y_observed
        assert dt[g]["y"].dims[-1] == "y_obs", g
        np.testing.assert_array_equal(dt[g]["y_obs"].values, KEPT)  # original row numbers
    assert dt.log_likelihood["y"].shape == (1, 200, MASK.sum())
    assert dt.posterior_predictive["y"].shape == (1, 200, MASK.sum())
    np.testing.assert_array_equal(dt.observed_data["y"].values, Y[MASK])
    # the model's arguments are kept whole (masked rows included), on the plate dim
    assert dt.constant_data["y"].dims == ("n",)
    np.testing.assert_array_equal(dt.constant_data["y"].values, Y)
    assert "y_observed" not in dt.posterior.data_vars and "y" not in dt.posterior.data_vars


@MASKED_MODELS
def test_masked_loglik_sums_to_the_fit_and_loo_counts_observed_rows(masked_fits, model):
    res = masked_fits[model.__name__]
    point = res.to_datatree(uncertainty=False, num_samples=1)
    assert float(point.log_likelihood["y"].sum()) == pytest.approx(res.loglik, rel=EXACT)
    # the same as the model's terms at the estimate, observed rows only
    a, s = float(res.params["a"]), float(res.params["s"])
    terms = (-0.5 * ((Y - a - X) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi))[MASK]  # NumPy float64
    np.testing.assert_allclose(point.log_likelihood["y"].values[0, 0], terms, rtol=EXACT)
    dt = res.to_datatree(num_samples=400)
    out = mleppl.loo(dt, var_name="y")
    assert out.n_data_points == MASK.sum()
    assert np.isfinite(out.elpd)
    assert np.isfinite(mleppl.loo(dt).elpd)


@MASKED_MODELS
def test_plot_ppc_of_masked_model(masked_fits, model, tmp_path):
    res = masked_fits[model.__name__]
    pc = mleppl.plot_ppc(res, num_samples=50, path=tmp_path / "ppc.png")
    assert type(pc).__name__ == "PlotCollection"
    assert (tmp_path / "ppc.png").exists()
    pc2 = mleppl.plot_ppc(res, num_samples=20, kind="dist", var_names=["y"])
    assert type(pc2).__name__ == "PlotCollection"
    plt.close("all")


def test_plot_ppc_accepts_numpyros_name_of_an_obs_mask_site(masked_fits):
    pc = mleppl.plot_ppc(masked_fits["obs_masked"], num_samples=20, kind="dist", var_names=["y_observed"])
    assert type(pc).__name__ == "PlotCollection"
    plt.close("all")


def test_unmasked_export_unchanged_by_the_masked_path():
    res = fit_mle(obs_masked, X, y=Y, mask=np.ones(N, bool))
    dt = res.to_datatree(num_samples=50)
    assert dt.log_likelihood["y"].dims == ("chain", "draw", "n")
    assert dt.observed_data["y"].dims == ("n",)
    assert dt.constant_data["y"].dims == ("n",)


# ----------------------------------------------------------------- (B) summary marks
RX = np.random.default_rng(1)
XP = np.c_[np.ones(100), RX.normal(size=100)]
YP = RX.poisson(np.exp(XP @ [1, 0.5]))


def poisson(X, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("n", X.shape[0]):
        numpyro.sample("y", dist.Poisson(jnp.exp(X @ b)), obs=y)


@pytest.fixture(scope="module")
def stopped():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MLEWarning)
        res = fit_mle(poisson, XP, y=YP, max_steps=2, init={"b": np.array([3.0, 3])})
    assert not res.converged
    return res


@pytest.fixture(scope="module")
def converged():
    res = fit_mle(poisson, XP, y=YP)
    assert res.converged
    return res


def _summary(res):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return res.summary()


def test_summary_of_unconverged_fit_is_marked_every_time_it_is_shown(stopped):
    with pytest.warns(ConvergenceWarning, match="summary: the fit did not converge"):
        t = stopped.summary()
    assert isinstance(t, pd.DataFrame)
    mark = f"NOT CONVERGED: {stopped.message}"
    for _ in range(2):  # the mark does not go away once shown (unlike the warning)
        assert repr(t).splitlines()[0] == mark
        assert str(t).splitlines()[0] == mark
        assert t.to_string().splitlines()[0] == mark
    assert mark in t._repr_html_()
    buf = io.StringIO()
    assert t.to_string(buf) is None and buf.getvalue().startswith(mark)
    assert t.attrs["converged"] is False and t.attrs["message"] == stopped.message
    assert "did not converge" in t.attrs["note"]


def test_marked_summary_is_still_a_dataframe(stopped):
    t = _summary(stopped)
    assert t.loc["b[0]", "estimate"] == pytest.approx(float(stopped.params["b"][0]))
    assert list(t.index) == stopped.param_names
    sub = t.loc[["b[1]"], ["estimate", "se"]]
    assert isinstance(sub, pd.DataFrame) and sub.shape == (1, 2)
    assert isinstance(t["estimate"], pd.Series)
    np.testing.assert_array_equal(t.to_numpy(), pd.DataFrame(t).to_numpy())
    assert "NOT CONVERGED" in repr(t.round(3))  # derived tables keep the mark
    csv = t.to_csv()
    assert csv.splitlines()[0] == "parameter,estimate,se,z,p_value,ci_lower,ci_upper"
    assert "NOT CONVERGED" not in csv and "NOT CONVERGED" not in t.to_latex()
    assert pd.read_csv(io.StringIO(csv), index_col=0).shape == t.shape
    assert "NOT converged" in str(stopped) and str(stopped).count("NOT CONVERGED") == 0


def test_converged_summary_prints_as_before(converged):
    t = converged.summary()
    plain = pd.DataFrame(t)
    assert type(plain) is pd.DataFrame
    assert repr(t) == repr(plain)
    assert t.to_string() == plain.to_string()
    assert t._repr_html_() == plain._repr_html_()
    assert t.attrs["converged"] is True and t.attrs["issues"] == ()
    assert "NOT" not in repr(t) and "FLAGGED" not in repr(t)


def test_summary_of_flagged_fit_lists_its_issues():
    rng = np.random.default_rng(6)
    y = rng.normal(2.0, 1.0, size=40)

    def two_intercepts(y=None):
        a = numpyro.sample("a", dist.Normal(0, 10))
        c = numpyro.sample("c", dist.Normal(0, 10))
        with numpyro.plate("n", 40):
            numpyro.sample("y", dist.Normal(a + c, 1.0), obs=y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MLEWarning)
        res = fit_mle(two_intercepts, y=y)
    assert any(i.kind == "ridge" for i in res.issues)
    t = _summary(res)
    flagged = [line for line in repr(t).splitlines() if line.startswith("FLAGGED:")]
    assert len(flagged) == 1 and "ridge (a, c)" in flagged[0] and flagged[0].endswith("see res.issues")
    assert any("ridge" in i for i in t.attrs["issues"])
    assert flagged[0] in str(res)
