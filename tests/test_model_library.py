"""One table of properties, checked for every model in ``models/``.

On the bundled data: the fit converged, the gradient vanishes at the optimum,
the observed information is positive definite and the automatic-differentiation
Hessian agrees with finite differences of the gradient. On a large dataset
simulated from the model: the true parameters are recovered within the
asymptotic standard errors, and a second fit of the same shapes reuses the
compiled program (no retracing).

Tolerances, each with its reason:

- ``DECREMENT`` (1e-9): Newton decrement gᵀH⁻¹g at the reported optimum, a
  scale-free measure of how far the log-likelihood is from its local maximum;
  the fit stops at λ²/2 ≤ 1e-12, so 1e-9 leaves room for the independent
  gradient evaluation's rounding.
- ``FD_HESSIAN`` (2e-5 of the largest Hessian entry): central differences of
  the AD gradient with relative step 1e-5 have truncation error O(h²) ≈ 1e-10
  and rounding error O(ε·|g|/h) ≈ 1e-11·scale; 2e-5 still catches any wrong
  second derivative.
- ``RECOVERY_Z`` (4.5): every |θ̂ − θ| / SE below 4.5. Under the asymptotic
  normal approximation P(|Z| > 4.5) = 6.8e-6 per parameter; with at most 60
  parameters per model and 15 models the chance of a false alarm on a fixed
  seed is below 1 %. The seeds are fixed, so the test is deterministic.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _library import (
    N_SIM,
    N_SIM_DEFAULT,
    SLOW_CHECKS,
    SLOW_SIMULATION,
    as_float64,
    bundled,
    counted,
    fit_options,
    gradient,
    gradient_fn,
    sim_init,
    simulated,
)

from mleppl import fit_mle
from models import NAMES, load_module

DECREMENT = 1e-9
FD_HESSIAN = 2e-5
RECOVERY_Z = 4.5


@pytest.mark.parametrize("name", NAMES)
def test_converged_on_bundled_data(name):
    _, ex, res = bundled(name)
    assert res.converged, f"{name}: {res.message}"
    assert np.isfinite(res.loglik)
    assert res.nobs == len(np.asarray(ex.kwargs[ex.observed]))
    assert all(np.all(np.isfinite(v)) for v in res.se.values()), f"{name}: non-finite standard errors"


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CHECKS else n for n in NAMES]
)
def test_gradient_vanishes_at_optimum(name):
    _, _, res = bundled(name)
    g = gradient(name, res.z)
    decrement = float(g @ np.linalg.solve(res.hessian, g))
    assert decrement < DECREMENT, f"{name}: gᵀH⁻¹g = {decrement:.3g}, max|g| = {np.max(np.abs(g)):.3g}"


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CHECKS else n for n in NAMES]
)
def test_hessian_positive_definite(name):
    _, _, res = bundled(name)
    h = np.asarray(res.hessian)
    np.testing.assert_allclose(h, h.T, rtol=0, atol=1e-9 * np.max(np.abs(h)))
    eig = np.linalg.eigvalsh(h)
    assert eig[0] > 0, f"{name}: eigenvalues of the observed information {eig}"
    np.linalg.cholesky(h)  # raises if not numerically positive definite (Longley: condition 2e19)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CHECKS else n for n in NAMES]
)
def test_ad_hessian_matches_finite_differences(name):
    _, _, res = bundled(name)
    z = np.asarray(res.z, dtype=float)
    grad = gradient_fn(name)
    cols = []
    with jax.enable_x64(True):
        for j in range(z.size):
            h = 1e-5 * max(1.0, abs(z[j]))
            e = np.zeros_like(z)
            e[j] = h
            gp = np.asarray(grad(jnp.asarray(z + e)))
            gm = np.asarray(grad(jnp.asarray(z - e)))
            cols.append((gp - gm) / (2 * h))
    fd = np.column_stack(cols)
    ad = np.asarray(res.hessian)
    err = np.max(np.abs(fd - ad)) / np.max(np.abs(ad))
    assert err < FD_HESSIAN, (
        f"{name}: AD vs finite-difference Hessian, max error {err:.3g} of the largest entry"
    )


def _flat_truth(mod, res) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(mod.TRUE[k], dtype=float)) for k in res.params])


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_SIMULATION else n for n in NAMES]
)
def test_recovers_true_parameters_on_simulated_data(name):
    mod = load_module(name)
    _, _, res = simulated(name)
    assert res.converged, f"{name}: {res.message}"
    assert set(res.params) == set(mod.TRUE), f"{name}: TRUE must name every free site"
    est = np.concatenate([np.ravel(res.params[k]) for k in res.params])
    se = np.concatenate([np.ravel(res.se[k]) for k in res.params])
    truth = _flat_truth(mod, res)
    # a simplex has one redundant coordinate; its SE is still the marginal SE, so the check holds
    z = np.abs(est - truth) / se
    worst = int(np.argmax(z))
    assert z[worst] < RECOVERY_Z, (
        f"{name}: {res.param_names[worst]} = {est[worst]:.5g}, true {truth[worst]:.5g}, "
        f"SE {se[worst]:.3g} (|z| = {z[worst]:.2f})"
    )


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_SIMULATION else n for n in NAMES]
)
def test_second_fit_of_same_shapes_does_not_retrace(name):
    mod = load_module(name)
    simulated(name)  # first fit through the counting wrapper: compiles
    wrapper = counted(name)
    first = wrapper.traced
    assert first > 0, f"{name}: the counting wrapper never saw a traced call"
    args, kwargs = as_float64(mod.simulate(jax.random.PRNGKey(1), N_SIM.get(name, N_SIM_DEFAULT)))
    res = fit_mle(wrapper, *args, init=sim_init(mod, name, args, kwargs), **fit_options(name), **kwargs)
    assert res.converged
    assert wrapper.traced == first, f"{name}: retraced {wrapper.traced - first} time(s) on a second fit"


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CHECKS else n for n in NAMES]
)
def test_predictive_check_renders(name, tmp_path):
    import matplotlib.pyplot as plt

    from mleppl import plot_ppc

    _, ex, res = bundled(name)
    path = tmp_path / f"{name}_ppc.png"
    plot_ppc(res, path=path, num_samples=20)
    plt.close("all")
    assert path.stat().st_size > 1000


def test_demo_report_tables_are_plain_and_share_their_labels(tmp_path):
    """``make demo``'s report: ``index.csv`` holds model names (the links live in index.md),
    and the MLE-vs-NUTS table names the coefficients as the model's own table does."""
    import pandas as pd

    from models.__main__ import NUTS_MODEL, main

    assert main(["--only", NUTS_MODEL, "--out", str(tmp_path)]) == 0
    index = pd.read_csv(tmp_path / "index.csv")
    assert list(index["model"]) == [NUTS_MODEL]
    assert f"[{NUTS_MODEL}]({NUTS_MODEL}.md)" in (tmp_path / "index.md").read_text()
    own = pd.read_csv(tmp_path / f"{NUTS_MODEL}.csv", index_col=0)
    versus = pd.read_csv(tmp_path / f"{NUTS_MODEL}_mle_vs_nuts.csv", index_col=0)
    assert list(versus.index) == list(own.index) == ["beta[const]", "beta[temperature_f]"]
    np.testing.assert_allclose(versus["mle"], own["estimate"], rtol=1e-12)
    section = (tmp_path / "index.md").read_text().split("## MLE vs NUTS")[1]
    header = next(line for line in section.splitlines() if line.startswith("| parameter"))
    assert header.count("|") <= 10 and "reason" not in header  # reasons are listed below it
