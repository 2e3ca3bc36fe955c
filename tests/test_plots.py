"""plot_ppc renders headless (Agg, set in conftest), writes the files it is asked for, and
shows the data it is given (read off the artists of the returned PlotCollection)."""

from __future__ import annotations

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import mleppl
from mleppl import fit_mle, plot_ppc
from mleppl.plots import DEFAULT_KIND


def mixed(x, y=None, counts=None, hit=None, grade=None):
    """Four observed sites: continuous, counts, binary, ordinal."""
    a = numpyro.sample("a", dist.Normal(0, 10))
    b = numpyro.sample("b", dist.Normal(0, 10))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5))
    rate = numpyro.sample("rate", dist.Gamma(2, 1))
    c = numpyro.sample("c", dist.Normal(0, 10))
    cut = numpyro.sample(
        "cut", dist.TransformedDistribution(dist.Normal(0, 5).expand([2]), dist.transforms.OrderedTransform())
    )
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Normal(a + b * x, sigma), obs=y)
        numpyro.sample("counts", dist.Poisson(rate), obs=counts)
        numpyro.sample("hit", dist.Bernoulli(logits=c + x), obs=hit)
        numpyro.sample("grade", dist.OrderedLogistic(x, cut), obs=grade)


@pytest.fixture(scope="module")
def res(rng):
    n = 120
    x = rng.normal(size=n)
    y = 1 + 2 * x + rng.normal(size=n)
    counts = rng.poisson(3.0, size=n)
    hit = (rng.uniform(size=n) < 1 / (1 + np.exp(-x))).astype(float)
    grade = np.digitize(x + rng.logistic(size=n), [-1.0, 1.0])
    return fit_mle(mixed, x, y=y, counts=counts, hit=hit, grade=grade), (x, y, counts, hit, grade)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


# ------------------------------------------------------------------ what a figure shows
# ``pc.viz`` holds the figure and, per visual (``observed_dist``, ``ecdf_lines``, ...) and
# variable, the matplotlib artists ArviZ drew; the checks below read the data off them.
CURVES = 50  # predictive curves drawn at most (ArviZ's default, see reporting.arviz.plot_ppc_check)


def _titles(pc):
    return [ax.get_title() for ax in pc.viz["figure"].item().axes if ax.get_visible() and ax.axison]


def _artists(pc, visual, var):
    return list(np.ravel(pc.viz[visual][var].values))


def _points(pc, visual, var):
    """(x, y) of the one line or marker set of ``visual`` for ``var``."""
    (artist,) = _artists(pc, visual, var)
    if hasattr(artist, "get_offsets"):
        xy = np.asarray(artist.get_offsets(), dtype=float)
        return xy[:, 0], xy[:, 1]
    return np.asarray(artist.get_xdata(), dtype=float), np.asarray(artist.get_ydata(), dtype=float)


def _ecdf(data, x):
    return (np.ravel(data)[None, :] <= x[:, None]).mean(axis=1)


def assert_observed_curve(pc, var, data, ecdf=None):
    """The observed-data curve of a dist panel is that of ``data``: on a grid spanning its range
    and, for an ECDF (``ecdf=None``: ArviZ's "auto" choice, below 100 observations), equal to
    its ECDF at every grid point."""
    data = np.ravel(data)
    x, f = _points(pc, "observed_dist", var)
    step = np.diff(x).max()
    assert abs(x.min() - data.min()) <= step and abs(x.max() - data.max()) <= step, (var, x[[0, -1]])
    if ecdf is None:
        ecdf = data.size < 100
    if ecdf:
        np.testing.assert_allclose(f, _ecdf(data, x), atol=1e-12, err_msg=var)
    return x, f


def assert_pit_curve(pc, var, n_uniform=None):
    """The PIT panel shows an ECDF of values in [0, 1] (as its difference from the uniform's);
    ``n_uniform``: a correct model's n PIT values, within the 99.9 % Kolmogorov bound 1.95/√n."""
    x, diff = _points(pc, "ecdf_lines", var)
    cdf = diff + x
    assert x[0] == 0 and x[-1] == 1 and np.all(np.diff(x) > 0), var
    assert np.all(np.diff(cdf) >= -1e-12) and cdf[0] == pytest.approx(0) and cdf[-1] == pytest.approx(1)
    if n_uniform is not None:
        assert np.abs(diff).max() < 1.95 / np.sqrt(n_uniform), (var, np.abs(diff).max())


def assert_rootogram_of(pc, var, data):
    """Observed frequency of each value k = np.bincount(data)[k]; expected frequencies sum to n."""
    counts = np.bincount(np.asarray(data, dtype=np.int64))
    k = np.flatnonzero(counts)
    x, observed = _points(pc, "observed_markers", var)
    np.testing.assert_array_equal(x, k)
    np.testing.assert_array_equal(observed, counts[k])
    _, expected = _points(pc, "predictive_markers", var)
    assert expected.sum() == pytest.approx(len(data))


def assert_calibration_of(pc, panel, outcome):
    """A PAV calibration curve of the 0/1 ``outcome``: one point per observation, predicted
    probabilities sorted, conditional event probabilities isotonic in [0, 1] with the outcome's
    mean (the PAV fit preserves it)."""
    p, cep = _points(pc, "lines", panel)
    tol = 1e-12  # the probabilities of ordinal data are cumulative sums
    assert len(p) == len(outcome) and np.all(np.diff(p) >= -tol), panel
    assert np.all(np.diff(cep) >= -tol), panel
    assert -tol <= min(p[0], cep[0]) and max(p[-1], cep[-1]) <= 1 + tol, panel
    assert cep.mean() == pytest.approx(np.mean(outcome), abs=1e-12), panel


def test_kind_is_chosen_by_data_type(res, tmp_path):
    fit, data = res
    out = plot_ppc(fit, path=tmp_path / "ppc.png", num_samples=100)
    assert set(out) == {"y", "counts", "hit", "grade"}  # one check per data type
    for site in ("y", "counts", "hit", "grade"):
        f = tmp_path / f"ppc_{site}.png"
        assert f.exists() and f.stat().st_size > 5000, site
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert type(out["y"]).__name__ == "PlotCollection"
    _, y, counts, hit, grade = data
    assert len({id(pc.viz["figure"].item()) for pc in out.values()}) == 4
    assert _titles(out["y"]) == ["y", "y"]  # density and PIT panels
    assert_observed_curve(out["y"], "y", y)
    assert len(_artists(out["y"], "predictive_dist", "y")) == min(100, CURVES)
    assert_pit_curve(out["y"], "y", n_uniform=len(y))
    assert _titles(out["counts"]) == ["counts"]
    assert_rootogram_of(out["counts"], "counts", counts)
    assert _titles(out["hit"]) == ["hit"]
    assert_calibration_of(out["hit"], "hit", hit)
    panels = [f"grade cumul≤{k}" for k in range(grade.max())]  # 3 levels: 2 cumulative panels
    assert _titles(out["grade"]) == panels
    for k, panel in enumerate(panels):
        assert_calibration_of(out["grade"], panel, grade <= k)
    assert DEFAULT_KIND["continuous"] == "dist_pit" and DEFAULT_KIND["count"] == "rootogram"


@pytest.mark.parametrize(
    ("site", "kind"), [("y", "dist"), ("y", "pit"), ("counts", "interval"), ("y", "tstat")]
)
def test_other_kinds(res, tmp_path, site, kind):
    fit, (_, y, counts, _, _) = res
    path = tmp_path / "sub" / f"{site}_{kind}.png"
    n_rep = 60
    pc = plot_ppc(fit, kind=kind, var_names=[site], path=path, num_samples=n_rep)
    assert type(pc).__name__ == "PlotCollection"
    assert path.exists() and path.stat().st_size > 5000
    if kind == "dist":
        assert _titles(pc) == ["y"]
        assert_observed_curve(pc, "y", y)
        assert len(_artists(pc, "predictive_dist", "y")) == min(n_rep, CURVES)
    elif kind == "pit":
        assert _titles(pc) == ["y"]
        assert_pit_curve(pc, "y", n_uniform=len(y))
    elif kind == "interval":  # one observed marker per observation, at its value
        idx, observed = _points(pc, "observed_markers", "counts")
        np.testing.assert_array_equal(idx, np.arange(len(counts)))
        np.testing.assert_array_equal(observed, counts)
    else:  # tstat: the observed median against the ECDF of all n_rep replicates' medians
        assert _titles(pc) == ["y (median)"]
        (observed,), _ = _points(pc, "observed_tstat", "y")
        assert observed == pytest.approx(np.median(y))
        _, ecdf = _points(pc, "dist", "y")
        assert ecdf.min() == pytest.approx(1 / n_rep) and ecdf.max() == pytest.approx(1)


def test_held_out_data(res, tmp_path):
    fit, (x, y, counts, hit, grade) = res
    path = tmp_path / "held_out.png"
    pc = plot_ppc(
        fit, x[:40], y=y[:40], counts=counts[:40], hit=hit[:40], grade=grade[:40], var_names=["y"], path=path
    )
    assert path.exists()
    assert type(pc).__name__ == "PlotCollection"
    # the held-out y (40 values: an ECDF), not the fit's 120
    x_grid, f = assert_observed_curve(pc, "y", y[:40])
    assert np.abs(f - _ecdf(y, x_grid)).max() > 0.05
    assert len(_artists(pc, "predictive_dist", "y")) == CURVES
    assert_pit_curve(pc, "y", n_uniform=40)


def test_vector_and_masked_sites(rng, tmp_path):
    def model(y=None, keep=None):
        loc = numpyro.sample("loc", dist.Normal(0, 10).expand([2]).to_event(1))
        with numpyro.plate("row", y.shape[0]):
            numpyro.sample("y", dist.Normal(loc, 1.0).to_event(1), obs=y)
            numpyro.sample("z", dist.Normal(loc[0], 1.0), obs=y[:, 0] + 0.1, obs_mask=keep)

    y = rng.normal(size=(30, 2))
    keep = np.arange(30) % 3 != 0
    fit = fit_mle(model, y=y, keep=keep)
    out = plot_ppc(fit, path=tmp_path / "v.png", num_samples=80)
    assert type(out).__name__ == "PlotCollection"  # both continuous: one figure
    assert (tmp_path / "v.png").exists()
    assert _titles(out) == ["y", "y", "z", "z"]  # one row per site
    assert_observed_curve(out, "y", y)  # both columns of the vector site: 60 values
    assert_observed_curve(out, "z", y[keep, 0] + 0.1)  # the 20 entries kept by obs_mask
    for site in ("y", "z"):
        assert len(_artists(out, "predictive_dist", site)) == CURVES
        assert_pit_curve(out, site)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"kind": "violin"}, ValueError, "kind: expected one of"),
        ({"kind": "rootogram", "var_names": ["y"]}, ValueError, "expected a site with count"),
        ({"var_names": ["nope"]}, ValueError, r"var_names: expected observed sites among \['y'"),
        ({"var_names": "y"}, TypeError, "var_names: expected a list"),
    ],
)
def test_validation(res, options, error, match):
    fit, _ = res
    with pytest.raises(error, match=match):
        plot_ppc(fit, **options)


def test_public_name():
    assert mleppl.plot_ppc is plot_ppc


# ------------------------------------------------------------------ outputs that do not mislead
def poisson(x, y=None):
    a = numpyro.sample("a", dist.Normal(0, 5))
    b = numpyro.sample("b", dist.Normal(0, 5))
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Poisson(jnp.exp(a + b * x)), obs=y)


def test_counts_stored_as_floats_get_the_count_check(rng, tmp_path):
    x = rng.normal(size=80)
    y = rng.poisson(np.exp(0.3 + 0.5 * x)).astype(np.float64)  # counts in a float64 array
    fit = fit_mle(poisson, x, y=y)
    pc = plot_ppc(fit, num_samples=50, path=tmp_path / "r.png")  # a rootogram (was: "y ... continuous")
    assert type(pc).__name__ == "PlotCollection" and (tmp_path / "r.png").exists()
    assert _titles(pc) == ["y"]
    assert_rootogram_of(pc, "y", y)
    held_out = plot_ppc(fit, x[:30], y=y[:30], kind="rootogram", num_samples=20)
    assert_rootogram_of(held_out, "y", y[:30])


def test_held_out_check_without_observed_data_says_so(rng):
    x = rng.normal(size=40)
    fit = fit_mle(poisson, x, y=rng.poisson(np.exp(0.2 * x)).astype(float))
    with pytest.raises(ValueError, match=r"observed site\(s\) \['y'\]: expected observed data .* got none"):
        plot_ppc(fit, x[:10])


def test_ordinal_panel_titles_do_not_overlap():
    from models import ordinal_logistic

    ex = ordinal_logistic.load()  # 7 categories: 6 cumulative panels in two rows
    fit = fit_mle(ordinal_logistic.model, *ex.args, init=ex.init, **ex.fit_options, **ex.kwargs)
    pc = plot_ppc(fit, num_samples=50)
    assert type(pc).__name__ == "PlotCollection"
    panels = [f"y cumul≤{k}" for k in range(6)]
    assert _titles(pc) == panels
    for k, panel in enumerate(panels):
        assert_calibration_of(pc, panel, ex.kwargs["y"] <= k)
    fig = plt.gcf()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert len(axes) >= 2
    for a in axes:
        title = a.title.get_window_extent(renderer)
        for b in axes:
            if b is not a:
                assert not title.overlaps(b.get_tightbbox(renderer)), a.get_title()


def test_censoring_times_by_hand():
    from mleppl.plots import censoring_times

    y = np.array([2.0, 3.0, 3.0, 5.0, 7.0])
    cens = np.array([False, True, False, True, False])
    # reverse Kaplan–Meier of the censoring times {3, 5}: P(C = 3) = 1/4, P(C = 5) = 3/8, and
    # the rest (3/8) at the end of follow-up (7); an event at 7 is censored at 7
    u = np.array([[0.1] * 5, [0.5] * 5, [0.9] * 5])
    c = censoring_times(y, cens, u)
    np.testing.assert_array_equal(c[:, 1], [3.0, 3.0, 3.0])  # censored: its own value
    np.testing.assert_array_equal(c[:, 3], [5.0, 5.0, 5.0])
    np.testing.assert_array_equal(c[:, 0], [3.0, 5.0, 7.0])  # thresholds 1/4 and 5/8
    np.testing.assert_array_equal(c[:, 2], [3.0, 5.0, 7.0])  # an event tied with C = 3: C ≥ 3
    np.testing.assert_array_equal(c[:, 4], [7.0, 7.0, 7.0])


def test_censored_data_are_checked_against_replicates_censored_alike(tmp_path):
    import jax

    from mleppl.plots import _censor_replicates
    from models import weibull_survival

    args, kwargs = weibull_survival.simulate(jax.random.PRNGKey(3), 400)  # random censoring times
    fit = fit_mle(weibull_survival.model, *args, **kwargs)
    dt = fit.to_datatree(uncertainty=False, num_samples=300, log_likelihood=False)
    y = kwargs["y"]
    raw = dt.posterior_predictive["y"].values.reshape(300, -1)
    censored = _censor_replicates(dt, fit.problem, ["y"], jax.random.PRNGKey(0))
    rep = censored.posterior_predictive["y"].values.reshape(300, -1)
    assert np.all(rep <= raw)
    for stat in (np.mean, np.median, lambda v, axis=None: np.quantile(v, 0.9, axis=axis)):
        sims = stat(rep, axis=1)
        # a correct model: the observed statistic is a typical replicate
        assert abs(stat(y) - sims.mean()) < 3 * sims.std(), stat
    # uncensored replicates would call this correct model a misfit
    assert abs(np.mean(y) - raw.mean(axis=1).mean()) > 5 * raw.mean(axis=1).std()
    with pytest.raises(ValueError, match="kind='pit': expected a site with continuous"):
        plot_ppc(fit, kind="pit")
    pc = plot_ppc(fit, num_samples=40, path=tmp_path / "w.png")  # default for censored data: ECDF
    assert type(pc).__name__ == "PlotCollection"
    assert _titles(pc) == ["y"]
    assert_observed_curve(pc, "y", y, ecdf=True)
    curves = _artists(pc, "predictive_dist", "y")
    assert len(curves) == 40
    # replicates censored alike: none beyond the end of follow-up, the largest observed time
    assert max(np.max(c.get_xdata()) for c in curves) <= np.max(y)
