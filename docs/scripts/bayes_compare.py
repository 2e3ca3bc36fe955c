"""Regenerate the tables and figures of docs/guide/bayes.md.

Run from the repository root: ``python docs/scripts/bayes_compare.py``. It fits
each model by maximum likelihood and by NUTS (2 chains × 1000 draws, key 0),
prints the comparison tables as Markdown and writes the forest plots to docs/img/.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import mleppl  # noqa: E402
from models import load_module  # noqa: E402

COLUMNS = ["mle", "se", "post_mean", "post_sd", "std_diff", "sd_ratio", "prior_weight", "r_hat", "flag"]
PLOTS = {"logistic_regression", "poisson_exposure", "robust_regression", "bvm_logistic"}


def markdown(table) -> str:
    """A pandas DataFrame as a Markdown table (no tabulate dependency)."""

    def cell(v):
        if isinstance(v, (bool, np.bool_)):
            return "**yes**" if v else "no"
        return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)

    lines = ["| | " + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
    for label, row in table.iterrows():
        lines.append(f"| `{label}` | " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def show(name, res, dt, seconds):
    table = mleppl.compare(res, dt)
    print(f"\n### {name}  (nobs {res.nobs}, NUTS {seconds:.0f} s)\n")
    print(markdown(table[COLUMNS]))
    print()
    for label, reason in table["reason"].items():
        if reason:
            print(f"- `{label}`: {reason}")
    if name in PLOTS:
        mleppl.plot_compare(res, dt, path=ROOT / "docs" / "img" / f"bayes_{name}.png")


def main():
    for name in ["logistic_regression", "poisson_exposure", "robust_regression", "linear_regression"]:
        mod = load_module(name)
        ex = mod.load()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = mleppl.fit_mle(mod.model, *ex.args, **ex.kwargs)
        t = time.perf_counter()
        dt = mleppl.fit_nuts(mod.model, *ex.args, progress_bar=False, **ex.kwargs)
        show(name, res, dt, time.perf_counter() - t)
    mod = load_module("logistic_regression")
    args, kwargs = mod.simulate(jax.random.PRNGKey(11), 2000)
    res = mleppl.fit_mle(mod.model, *args, **kwargs)
    t = time.perf_counter()
    dt = mleppl.fit_nuts(mod.model, *args, progress_bar=False, **kwargs)
    show("bvm_logistic", res, dt, time.perf_counter() - t)


if __name__ == "__main__":
    main()
