"""plot_ppc renders headless (Agg, set in conftest) and writes the files it is asked for."""

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


def test_kind_is_chosen_by_data_type(res, tmp_path):
    fit, _ = res
    out = plot_ppc(fit, path=tmp_path / "ppc.png", num_samples=100)
    assert set(out) == {"y", "counts", "hit", "grade"}  # one check per data type
    for site in ("y", "counts", "hit", "grade"):
        f = tmp_path / f"ppc_{site}.png"
        assert f.exists() and f.stat().st_size > 5000, site
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert type(out["y"]).__name__ == "PlotCollection"
    assert DEFAULT_KIND["continuous"] == "dist_pit" and DEFAULT_KIND["count"] == "rootogram"


@pytest.mark.parametrize(
    ("site", "kind"), [("y", "dist"), ("y", "pit"), ("counts", "interval"), ("y", "tstat")]
)
def test_other_kinds(res, tmp_path, site, kind):
    fit, _ = res
    path = tmp_path / "sub" / f"{site}_{kind}.png"
    pc = plot_ppc(fit, kind=kind, var_names=[site], path=path, num_samples=60)
    assert type(pc).__name__ == "PlotCollection"
    assert path.exists() and path.stat().st_size > 5000


def test_held_out_data(res, tmp_path):
    fit, (x, y, counts, hit, grade) = res
    path = tmp_path / "held_out.png"
    pc = plot_ppc(
        fit, x[:40], y=y[:40], counts=counts[:40], hit=hit[:40], grade=grade[:40], var_names=["y"], path=path
    )
    assert path.exists()
    assert type(pc).__name__ == "PlotCollection"


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
    assert plot_ppc(fit, x[:30], y=y[:30], kind="rootogram", num_samples=20) is not None


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
