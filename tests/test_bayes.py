"""mleppl.bayes: NUTS fit of the same model, comparison with the MLE, forest plot.

Monte-Carlo tolerances are stated next to each check. Budget: the whole file runs
in well under two minutes on two CPU cores (small models, fixed seeds, one NUTS
run per fixture, module-scoped).
"""

from __future__ import annotations

import math

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import xarray as xr

import mleppl
from mleppl.bayes import SD_RATIO_TOL, STD_DIFF_TOL
from models import linear_regression, logistic_regression

# Bernstein–von Mises draws: 2 chains × 2000 kept draws. NUTS on these
# well-conditioned regressions gives ESS ≳ 2500 per parameter, so the
# Monte-Carlo standard error of the posterior mean is ≤ 0.02 SE (asserted below,
# not assumed). The tolerance 0.1 SE on |post_mean − MLE| is then ≥ 5 MC
# standard errors after subtracting the genuine O(n^-1/2)-in-SE-units gap
# between posterior mean and mode (≤ 0.04 SE at these n: for σ in the linear
# model the gap is ≈ (p + 1.5)/√(2n) = 0.036 SE at n = 8000). The MC error of
# sd/SE is ≈ 1/√(2·ESS) ≤ 0.015, so 10 % is ≥ 6 of them.
BVM_DRAWS = {"num_warmup": 500, "num_samples": 2000, "num_chains": 2}
BVM_MEAN_TOL = 0.1  # |post_mean − MLE| / SE
BVM_SD_TOL = 0.1  # |sd/SE − 1|
BVM_MCSE_MAX = 0.02  # precondition: MCSE of the mean / SE
SMALL_DRAWS = {"num_warmup": 300, "num_samples": 500, "num_chains": 2}


def _fits(model, args, kwargs, *, seed=0, **options):
    res = mleppl.fit_mle(model, *args, **kwargs)
    dt = mleppl.fit_nuts(model, *args, progress_bar=False, rng_key=seed, **options, **kwargs)
    return res, dt


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def bvm_logistic():
    args, kwargs = logistic_regression.simulate(jax.random.PRNGKey(11), 2000)
    res, dt = _fits(logistic_regression.model, args, kwargs, seed=3, **BVM_DRAWS)
    return res, dt, mleppl.compare(res, dt)


@pytest.fixture(scope="module")
def bvm_linear():
    args, kwargs = linear_regression.simulate(jax.random.PRNGKey(12), 8000)
    res, dt = _fits(linear_regression.model, args, kwargs, seed=4, **BVM_DRAWS)
    return res, dt, mleppl.compare(res, dt)


@pytest.fixture(scope="module")
def challenger():
    """Small n (23 flights), prior Normal(0, 10) against an intercept SE of 7.4."""
    ex = logistic_regression.load()
    res, dt = _fits(logistic_regression.model, ex.args, ex.kwargs, seed=5, **SMALL_DRAWS)
    return res, dt, mleppl.compare(res, dt)


def normal_model(y=None):
    """Informative prior on the mean, a derived site present in both fits."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 0.5))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    numpyro.deterministic("snr", mu / sigma)
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


Y_SMALL = np.array([3.1, 2.2, 4.0, 2.9, 3.6, 1.8, 3.3, 2.7])


@pytest.fixture(scope="module")
def small_normal():
    res, dt = _fits(normal_model, (), {"y": Y_SMALL}, seed=6, **SMALL_DRAWS)
    return res, dt


# ----------------------------------------------------------------------------- fit_nuts
def test_fit_nuts_tree(small_normal):
    _, dt = small_normal
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data", "prior"} <= set(dt.children)
    assert dict(dt["posterior"].sizes)["chain"] == 2 and dict(dt["posterior"].sizes)["draw"] == 500
    assert dt["posterior"]["mu"].dtype == np.float64
    assert dt["log_likelihood"]["y"].shape == (2, 500, Y_SMALL.size)
    assert "lp" in dt["sample_stats"] and "diverging" in dt["sample_stats"]
    assert dt["prior"]["mu"].shape[:2] == (1, 1000)


def test_fit_nuts_loo_works(small_normal):
    import arviz_stats as azs

    _, dt = small_normal
    elpd = azs.loo(dt)
    assert math.isfinite(float(elpd.elpd))


def test_fit_nuts_chains_differ_and_reproducible():
    y = np.array([0.3, -0.2, 0.8])

    def m(y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        with numpyro.plate("obs", 3):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    y0 = y.copy()
    opts = {"num_warmup": 30, "num_samples": 30, "num_chains": 2, "progress_bar": False, "num_prior_draws": 0}
    a = mleppl.fit_nuts(m, y=y, rng_key=1, **opts)
    b = mleppl.fit_nuts(m, y=y, rng_key=1, **opts)
    np.testing.assert_array_equal(a["posterior"]["mu"].values, b["posterior"]["mu"].values)
    chains = a["posterior"]["mu"].values
    assert not np.array_equal(chains[0], chains[1])  # both chains actually ran
    assert "prior" not in a.children
    np.testing.assert_array_equal(y, y0)  # user data untouched


@pytest.mark.parametrize(
    "opts, match",
    [
        ({"num_samples": 0}, r"num_samples: expected an integer ≥ 1, got 0"),
        ({"num_chains": 1.5}, r"num_chains: expected an integer ≥ 1, got 1.5"),
        ({"chain_method": "threads"}, r"chain_method: expected one of .* got 'threads'"),
        ({"target_accept_prob": 1.2}, r"target_accept_prob: expected a number in \(0, 1\), got 1.2"),
    ],
)
def test_fit_nuts_rejects_bad_options(opts, match):
    with pytest.raises(ValueError, match=match):
        mleppl.fit_nuts(normal_model, y=Y_SMALL, progress_bar=False, **opts)


def test_fit_nuts_rejects_param_sites():
    def m(y=None):
        mu = numpyro.param("mu", 0.0)
        with numpyro.plate("obs", 3):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    with pytest.raises(ValueError, match=r"numpyro.param sites: NUTS would hold them fixed"):
        mleppl.fit_nuts(m, y=np.zeros(3), progress_bar=False)


# ----------------------------------------------------------------------------- Bernstein–von Mises
@pytest.mark.parametrize("fixture", ["bvm_logistic", "bvm_linear"])
def test_bernstein_von_mises(fixture, request):
    res, _, table = request.getfixturevalue(fixture)
    assert list(table.index) == list(res.param_names)
    mcse_in_se = table["mcse_mean"] / table["se"]
    assert (mcse_in_se <= BVM_MCSE_MAX).all(), f"too few effective draws:\n{mcse_in_se}"
    assert (table["r_hat"] < 1.01).all()
    assert (table["std_diff"].abs() <= BVM_MEAN_TOL).all(), table[["mle", "post_mean", "std_diff"]]
    assert ((table["sd_ratio"] - 1.0).abs() <= BVM_SD_TOL).all(), table[["se", "post_sd", "sd_ratio"]]
    assert (table["overlap"] > 0.8).all()
    assert not table["flag"].any(), table[["flag", "reason"]]
    assert (table["reason"] == "").all()


def test_compare_columns(bvm_logistic):
    _, _, table = bvm_logistic
    for col in [
        "mle",
        "se",
        "post_mean",
        "post_median",
        "post_sd",
        "std_diff",
        "sd_ratio",
        "overlap",
        "flag",
    ]:
        assert col in table.columns
    row = table.iloc[0]
    assert row["std_diff"] == pytest.approx((row["post_mean"] - row["mle"]) / row["se"], rel=1e-12)
    assert row["sd_ratio"] == pytest.approx(row["post_sd"] / row["se"], rel=1e-12)
    assert row["mle_lower"] == pytest.approx(row["mle"] - 1.959963984540054 * row["se"], rel=1e-12)


# ----------------------------------------------------------------------------- disagreement is flagged
def test_small_sample_informative_prior_is_flagged(challenger):
    _, _, table = challenger
    # The prior sd 10 on the intercept is comparable to its SE 7.4: the posterior
    # is pulled towards 0 by far more than the thresholds (observed ≈ 0.4 SE).
    assert table["flag"].all(), table
    assert table["std_diff"].abs().max() > STD_DIFF_TOL
    assert table["sd_ratio"].min() < 1.0 / SD_RATIO_TOL
    # The intercept and slope are correlated (ρ ≈ −0.99): the prior on either pulls both.
    assert (table["prior_weight"] > 0.2).all()
    assert table["reason"].str.contains("prior pulling").all(), table["reason"].tolist()
    # The predicted prior shift has the sign of the observed one.
    assert (np.sign(table["prior_shift"]) == np.sign(table["std_diff"])).all()


def test_informative_prior_on_a_mean(small_normal):
    res, dt = small_normal
    table = mleppl.compare(res, dt)
    row = table.loc["mu"]
    assert row["flag"] and "prior pulling" in row["reason"]
    assert row["post_mean"] < row["mle"] - 2 * row["se"]  # pulled strongly towards 0
    assert row["prior_conflict"] > 2.0  # prior centre 0, data mean 2.95, se 0.24, prior sd 0.5
    # σ inflates to absorb the conflict on μ: the reason names the conflict, not weak identification.
    sigma = table.loc["sigma"]
    assert sigma["flag"] and "prior–data conflict on mu" in sigma["reason"]
    assert "weak identification" not in sigma["reason"]


def test_boundary_is_named():
    def m(y=None):
        mu = numpyro.sample("mu", dist.HalfNormal(1.0))  # support mu > 0
        with numpyro.plate("obs", y.shape[0]):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    y = np.array([0.9, -0.8, 0.4, -0.3, 0.1, 0.5, -0.6, 0.8, -0.2, 0.4])  # mean 0.12, SE 0.32
    res, dt = _fits(m, (), {"y": y}, seed=7, **SMALL_DRAWS)
    row = mleppl.compare(res, dt).loc["mu"]
    assert row["flag"] and row["std_diff"] > STD_DIFF_TOL  # mass pushed away from 0
    assert "boundary" in row["reason"]


# ----------------------------------------------------------------------------- one-sided parameters
def test_parameters_in_one_fit_only_are_reported(small_normal):
    res, dt = small_normal
    post = dt["posterior"].to_dataset()
    post = post.drop_vars("sigma").assign(extra=post["mu"] * 2.0)
    tree = xr.DataTree.from_dict({"posterior": post})
    table = mleppl.compare(res, tree)
    assert list(table.index) == ["mu", "sigma", "snr", "extra"]
    assert np.isnan(table.loc["sigma", "post_mean"]) and np.isfinite(table.loc["sigma", "mle"])
    assert table.loc["sigma", "flag"] and "only in the MLE fit" in table.loc["sigma", "reason"]
    assert np.isnan(table.loc["extra", "mle"]) and np.isfinite(table.loc["extra", "post_mean"])
    assert table.loc["extra", "flag"] and "only in the Bayesian fit" in table.loc["extra", "reason"]
    # A deterministic site of the model is compared, its MLE side from res.deterministic.
    assert table.loc["snr", "mle"] == pytest.approx(float(res.deterministic["snr"]))
    assert table.loc["snr", "se"] == pytest.approx(float(res.deterministic_se["snr"]))


def test_compare_validates_inputs(small_normal):
    res, dt = small_normal
    with pytest.raises(TypeError, match="res: expected an MLEResult"):
        mleppl.compare(dt, dt)
    with pytest.raises(ValueError, match="expected an ArviZ DataTree with a 'posterior' group"):
        mleppl.compare(res, xr.DataTree.from_dict({"prior": dt["prior"].to_dataset()}))
    with pytest.raises(ValueError, match="level: expected a number strictly between 0 and 1"):
        mleppl.compare(res, dt, level=95)


# ----------------------------------------------------------------------------- plot
@pytest.mark.parametrize("standardize", [True, False])
def test_plot_compare_writes_png_with_both_intervals(challenger, tmp_path, standardize):
    res, dt, _ = challenger
    path = tmp_path / "compare.png"
    pc = mleppl.plot_compare(res, dt, path=path, standardize=standardize)
    assert path.stat().st_size > 5000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for label in ("beta[0]", "beta[1]"):  # one row per scalar parameter, named as in the table
        twig = pc.viz["twig"][label]  # outer intervals, one line per fit
        assert set(twig.coords["model"].values) == {"MLE", "NUTS"}
        for line in np.ravel(twig.values):
            x = np.asarray(line.get_xdata(), dtype=float)
            assert np.isfinite(x).all() and x[1] > x[0]  # no silently vanished interval
        if standardize:  # the MLE's Wald interval is exactly ±1.96 around 0
            lo, hi = np.asarray(twig.sel(model="MLE").values.item().get_xdata(), dtype=float)
            assert lo == pytest.approx(-1.959964, abs=1e-6) and hi == pytest.approx(1.959964, abs=1e-6)
    import matplotlib.pyplot as plt

    plt.close("all")


def _marker(pc, label, model):
    return float(pc.viz["point_estimate"][label].sel(model=model).values.item().get_offsets()[0, 0])


def test_plot_compare_marks_the_mle_where_the_table_does_and_uses_the_fits_names(small_normal):
    import matplotlib.pyplot as plt

    res, dt = small_normal
    natural = mleppl.plot_compare(res, dt, standardize=False)
    table, post = res.conf_int(), dt["posterior"]
    # a bounded parameter: the marker is the MLE itself, not the mean of draws that
    # represent it, and the interval is the one conf_int reports (inside the support)
    assert _marker(natural, "sigma", "MLE") == pytest.approx(float(res.params["sigma"]), rel=1e-12)
    lo, hi = natural.viz["twig"]["sigma"].sel(model="MLE").values.item().get_xdata()
    assert (lo, hi) == pytest.approx(tuple(table.loc["sigma"]), rel=1e-12)
    assert _marker(natural, "sigma", "NUTS") == pytest.approx(float(post["sigma"].mean()), rel=1e-12)
    standardized = mleppl.plot_compare(res, dt)
    assert _marker(standardized, "sigma", "MLE") == 0.0
    assert set(standardized.viz["twig"].data_vars) == {"mu", "sigma", "snr"}
    # the axis label stays inside the figure
    fig = np.ravel(standardized.viz["plot"].sel(column="forest").values)[0].figure
    fig.canvas.draw()
    box = fig.axes[-1].xaxis.label.get_window_extent()
    assert box.y0 >= 0 and box.x1 <= fig.bbox.x1
    plt.close("all")


def test_compare_and_plot_compare_use_named_coordinates(challenger):
    import matplotlib.pyplot as plt

    res, dt, table = challenger
    names = ["const", "temperature_f"]
    named = mleppl.fit_mle(
        logistic_regression.model,
        *logistic_regression.load().args,
        coords={"beta": names},
        **logistic_regression.load().kwargs,
    )
    labelled = mleppl.compare(named, dt)
    assert list(labelled.index) == ["beta[const]", "beta[temperature_f]"]
    np.testing.assert_allclose(labelled.post_mean.to_numpy(), table.post_mean.to_numpy(), rtol=1e-12)
    pc = mleppl.plot_compare(named, dt)
    assert set(pc.viz["twig"].data_vars) == {"beta[const]", "beta[temperature_f]"}
    plt.close("all")
