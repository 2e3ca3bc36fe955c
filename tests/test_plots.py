"""plot_ppc renders headless (Agg, set in conftest) and writes the files it is asked for."""

from __future__ import annotations

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
