"""``python -m models`` (``make demo``): fit every library model on its bundled data.

Prints a compact summary per model and writes a report folder (default
``report/``): per model a CSV and a Markdown summary and a predictive-check
PNG, an MLE-vs-NUTS comparison for the Challenger logistic regression, and an
``index.md`` linking everything.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import mleppl
from mleppl import MLEWarning, fit_mle

from . import NAMES, load_module

NUTS_MODEL = "logistic_regression"
COLUMNS = ["estimate", "se", "z", "p_value", "ci_lower", "ci_upper"]
# the MLE-vs-NUTS table as shown (all columns go to the CSV)
COMPARE_COLUMNS = {
    "mle": "MLE",
    "se": "se",
    "post_mean": "post. mean",
    "post_sd": "post. sd",
    "std_diff": "std_diff",
    "sd_ratio": "sd_ratio",
    "r_hat": "r_hat",
    "flag": "flag",
}


def labelled_summary(res, labels: dict) -> pd.DataFrame:
    """``res.summary()`` with readable row labels (``beta[selfLR]`` instead of ``beta[1]``)."""
    table = res.summary()[COLUMNS]
    mapping = {}
    for site, labs in labels.items():
        rows = [n for n in table.index if n == site or n.startswith(site + "[")]
        if len(rows) == len(labs):
            mapping.update({r: f"{site}[{lab}]" for r, lab in zip(rows, labs)})
    return table.rename(index=mapping)


def likelihood_text(mod) -> str:
    """The first paragraph of a model's docstring (its one-line description)."""
    return (mod.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")


def markdown_table(df: pd.DataFrame, fmt=lambda v: f"{v:.4g}") -> str:
    head = "| " + " | ".join([df.index.name or ""] + list(df.columns)) + " |"
    sep = "|" + "---|" * (len(df.columns) + 1)
    rows = [
        "| "
        + " | ".join([str(i)] + [fmt(v) if isinstance(v, (float, np.floating)) else str(v) for v in r])
        + " |"
        for i, r in zip(df.index, df.itertuples(index=False))
    ]
    return "\n".join([head, sep, *rows])


def fit_one(name: str):
    mod = load_module(name)
    ex = mod.load()
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MLEWarning)
        res = fit_mle(mod.model, *ex.args, init=ex.init, **ex.fit_options, **ex.kwargs)
    return mod, ex, res, time.perf_counter() - t0, [f"{w.category.__name__}: {w.message}" for w in caught]


def predictive_check(res, path: Path) -> str | None:
    """Save the predictive-check figure; return an error message instead of failing the demo."""
    import matplotlib.pyplot as plt

    try:
        mleppl.plot_ppc(res, path=path, num_samples=200)
    except Exception as e:  # noqa: BLE001 - a demo reports a failed plot and goes on
        return f"{type(e).__name__}: {e}"
    finally:
        plt.close("all")
    return None


def write_model_report(out: Path, mod, ex, res, table, seconds, notes, ppc_error) -> None:
    table.to_csv(out / f"{ex.name}.csv")
    lines = [
        f"# {ex.name}",
        "",
        f"**{ex.description}**",
        "",
        likelihood_text(mod),
        "",
        f"- log-likelihood {res.loglik:.4f}, AIC {res.aic:.2f}, BIC {res.bic:.2f}, "
        f"n = {res.nobs}, parameters = {res.n_params}",
        f"- {'converged' if res.converged else 'NOT converged: ' + res.message} in {res.n_steps} "
        f"{res.method} steps, {seconds:.2f} s (first fit of these shapes includes compilation)",
        f"- independent reference in the tests: {ex.reference or 'see tests/test_models_reference.py'}",
        *[f"- warning: {n}" for n in notes],
        "",
        "Estimates with observed-information standard errors and 95 % Wald intervals:",
        "",
        markdown_table(table),
        "",
    ]
    if ppc_error is None:
        lines += ["## Predictive check", "", f"![predictive check]({ex.name}_ppc.png)", ""]
    else:
        lines += [f"Predictive check not drawn: {ppc_error}", ""]
    (out / f"{ex.name}.md").write_text("\n".join(lines))


def nuts_comparison(out: Path) -> str:
    """MLE vs NUTS (priors included) for one model; returns the Markdown section."""
    mod = load_module(NUTS_MODEL)
    ex = mod.load()
    res = fit_mle(mod.model, *ex.args, coords=ex.labels, **ex.kwargs)  # labels as in the other tables
    t0 = time.perf_counter()
    dt = mleppl.fit_nuts(
        mod.model, *ex.args, num_warmup=500, num_samples=1000, num_chains=2, progress_bar=False, **ex.kwargs
    )
    seconds = time.perf_counter() - t0
    table = mleppl.compare(res, dt)
    table.to_csv(out / f"{NUTS_MODEL}_mle_vs_nuts.csv")
    mleppl.plot_compare(res, dt, path=out / f"{NUTS_MODEL}_mle_vs_nuts.png")
    import matplotlib.pyplot as plt

    plt.close("all")
    shown = table[list(COMPARE_COLUMNS)].rename(columns=COMPARE_COLUMNS)
    shown["flag"] = np.where(table["flag"], "yes", "")
    print(f"\n=== MLE vs NUTS ({NUTS_MODEL}, 2 chains × 1000 draws, {seconds:.1f} s)")
    print(shown.to_string(float_format=lambda v: f"{v:.4g}"))
    reasons = [f"- `{lab}`: {r}" for lab, r in table["reason"].items() if r]
    return "\n".join(
        [
            f"## MLE vs NUTS: {NUTS_MODEL}",
            "",
            f"{ex.description}. NUTS with the model's priors, 2 chains × 1000 draws ({seconds:.1f} s).",
            "`std_diff` = (posterior mean − MLE) / se, `sd_ratio` = posterior sd / se; every column "
            f"is in [{NUTS_MODEL}_mle_vs_nuts.csv]({NUTS_MODEL}_mle_vs_nuts.csv).",
            "",
            markdown_table(shown, fmt=lambda v: f"{v:.4g}"),
            "",
            *(["Why flagged:", "", *reasons, ""] if reasons else []),
            f"![MLE vs NUTS]({NUTS_MODEL}_mle_vs_nuts.png)",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="report", help="report folder (default: report/)")
    ap.add_argument("--only", nargs="*", choices=NAMES, help="fit only these models")
    ap.add_argument("--no-plots", action="store_true", help="skip predictive checks and NUTS")
    opts = ap.parse_args(argv)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    names = opts.only or list(NAMES)
    pd.set_option("display.width", 120)
    t_start = time.perf_counter()
    index = []
    for i, name in enumerate(names, 1):
        print(f"\n[{i}/{len(names)}] fitting {name} ...", flush=True)
        mod, ex, res, seconds, notes = fit_one(name)
        table = labelled_summary(res, ex.labels)
        print(f"=== {ex.name}: {ex.description}")
        print(
            f"    n = {res.nobs}, k = {res.n_params}, loglik {res.loglik:.4f}, AIC {res.aic:.2f}, BIC {res.bic:.2f}, "
            f"{'converged' if res.converged else 'NOT CONVERGED'} in {res.n_steps} steps ({seconds:.2f} s)"
        )
        for n in notes:
            print(f"    warning: {n}")
        print(
            table[["estimate", "se", "ci_lower", "ci_upper", "p_value"]].to_string(
                float_format=lambda v: f"{v:.5g}"
            )
        )
        ppc_error = (
            "skipped (--no-plots)" if opts.no_plots else predictive_check(res, out / f"{ex.name}_ppc.png")
        )
        if ppc_error and not opts.no_plots:
            print(f"    predictive check failed: {ppc_error}")
        write_model_report(out, mod, ex, res, table, seconds, notes, ppc_error)
        index.append(
            {
                "model": ex.name,
                "data": ex.description,
                "n": res.nobs,
                "k": res.n_params,
                "loglik": round(res.loglik, 3),
                "AIC": round(res.aic, 2),
                "converged": "yes" if res.converged else "NO",
                "seconds": round(seconds, 2),
            }
        )
    idx = pd.DataFrame(index).set_index("model")
    idx.to_csv(out / "index.csv")
    sections = [
        "# mleppl model library: maximum-likelihood fits on bundled data",
        "",
        "Each row links to the model's summary (estimates, standard errors, 95 % intervals, predictive check).",
        "",
        markdown_table(idx.rename(index=lambda m: f"[{m}]({m}.md)"), fmt=lambda v: f"{v:g}"),
        "",
    ]
    if not opts.no_plots and NUTS_MODEL in names:
        print(f"\nrunning NUTS on {NUTS_MODEL} for the MLE-vs-Bayes comparison ...", flush=True)
        sections.append(nuts_comparison(out))
    (out / "index.md").write_text("\n".join(sections))
    print(
        f"\n{len(names)} models fitted in {time.perf_counter() - t_start:.1f} s; report written to {out.resolve()}/index.md"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
