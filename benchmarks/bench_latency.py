"""Time to first result: a new model's first fit in a fresh process, and where its time goes.

Each case runs in its own fresh process with JAX's persistent compilation cache off (a new
user, or a model just written): the first call (tracing, lowering, XLA compilation and run),
then the same call warm. ``benchmarks/_latency_worker.py`` breaks the first call down per
compiled program (mleppl names its programs ``mleppl_<stage>``; JAX's small programs of
eager operations while the model is bound are summed as "eager"). When ``Rscript`` with
lme4 and glmmTMB is installed, the same data are fitted by them, each in a fresh R process
(first call after loading the package, then warm); otherwise the table says so.
statsmodels (one BLAS thread, its faster setting here) is timed on the small logistic fit.

Usage: python benchmarks/bench_latency.py [--out docs/benchmarks.md] [--cases glm,glmm,...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
from _common import ROOT, run_json, worker_env, write_block

DATA = ROOT / ".cache" / "bench" / "latency"
HERE = Path(__file__).resolve().parent
START, END = "<!-- bench_latency:start -->", "<!-- bench_latency:end -->"

# case: (what, target in seconds from issue 20, R cases to time beside it)
CASES = {
    "glm": ("logistic GLM (10⁵ × 10)", 0.5, ("stats",)),
    "glmm": ("random-intercept logistic GLMM, 500 groups × 20", 1.0, ("lme4", "glmmTMB")),
    "cbpp": ("cbpp binomial GLMM (Laplace)", None, ("lme4", "glmmTMB")),
    "slope": ("correlated random-slope LMM, 2,000 subjects × 10", 1.5, ("lme4", "glmmTMB")),
    "sleep": ("sleepstudy random slopes", None, ("lme4", "glmmTMB")),
    "agq25": ("cbpp GLMM with `nagq=25`", 2.0, ("lme4",)),
    "resize": ("the GLMM again on 400 groups × 20 (another number of groups), same process", 0.5, ()),
    "rows": ("the GLMM again on 9,800 of its rows (same groups, same bucket), same process", 0.5, ()),
    "glm_rows": ("the GLM again on 95,000 of its rows (same bucket), same process", 0.5, ()),
    "ppc": ("`to_datatree()` + `plot_ppc()` after the GLMM fit", 1.0, ()),
    "boot_glm": ("`bootstrap(res, 200)` after a logistic GLM (10⁴ × 10)", 1.5, ()),
    "boot_glmm": ("`bootstrap(res, 200, kind='parametric')` after the cbpp fit", 3.0, ()),
    "small": ("warm logistic fit with SEs (10⁴ × 10)", None, ()),
}


def make_data() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for name in ("cbpp.csv", "sleepstudy.csv"):
        shutil.copy(HERE / "data" / name, DATA / name)
    rng = np.random.default_rng(20)
    for name, n in (("glm", 100_000), ("small", 10_000)):
        X = np.column_stack([np.ones(n), rng.normal(size=(n, 9))])
        beta = rng.normal(0, 0.3, 10)
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-X @ beta))).astype(np.float64)
        np.savez(DATA / f"{name}.npz", X=X, y=y)
        cols = {f"X{j}": X[:, j] for j in range(10)}
        _csv(DATA / f"{name}.csv", {**cols, "y": y})
    for name, groups, per, kind in (
        ("glmm", 500, 20, "logit"),
        ("glmm_resize", 400, 20, "logit"),
        ("slope", 2000, 10, "slope"),
    ):
        g = np.repeat(np.arange(groups), per)
        x = rng.normal(size=groups * per)
        if kind == "logit":
            eta = -0.3 + 0.7 * x + rng.normal(0, 0.8, groups)[g]
            y = (rng.uniform(size=eta.shape) < 1 / (1 + np.exp(-eta))).astype(np.float64)
        else:
            u = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 0.5]], groups)
            y = 2.0 + u[g, 0] + (0.5 + u[g, 1]) * x + rng.normal(0, 1.0, x.shape)
        np.savez(DATA / f"{name}.npz", x=x, g=g, y=y, G=groups)
        _csv(DATA / f"{name}.csv", {"x": x, "g": g, "y": y})


def _csv(path: Path, cols: dict) -> None:
    names = list(cols)
    arr = np.column_stack([cols[k] for k in names])
    np.savetxt(path, arr, delimiter=",", header=",".join(names), comments="", fmt="%.17g")


def run_mleppl(case: str) -> dict:
    return run_json([str(HERE / "_latency_worker.py"), case, str(DATA)], worker_env(), f"mleppl {case}")


def run_r(tool: str, case: str) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    out = subprocess.run(
        ["Rscript", str(HERE / "_latency.R"), tool, case, str(DATA)],
        capture_output=True,
        text=True,
        check=False,
        env=worker_env(one_blas_thread=True),
    )
    if out.returncode != 0:
        print(f"R {tool} {case} failed: {out.stderr[-500:]}", flush=True)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_statsmodels_small() -> dict:
    code = r"""
import json, sys, time
import numpy as np, statsmodels.api as sm
d = np.load(sys.argv[1]); X, y = d["X"], d["y"]
t = time.perf_counter(); r = sm.Logit(y, X).fit(method="newton", disp=0); r.bse; first = time.perf_counter() - t
w = []
for _ in range(20):
    t = time.perf_counter(); r = sm.Logit(y, X).fit(method="newton", disp=0); r.bse; w.append(time.perf_counter() - t)
print(json.dumps({"first": first, "warm": min(w)}))
"""
    out = {}
    for name in ("small", "glm"):
        out[name] = run_json(
            ["-c", code, str(DATA / f"{name}.npz")], worker_env(one_blas_thread=True), "statsmodels"
        )
    return out


def breakdown(programs: dict) -> str:
    """The programs that hold the first call, largest first: ``name trace/lower/XLA``."""
    rows = []
    for name, p in programs.items():
        total = p["trace"] + p["lower"] + p["compile"]
        if name == "mleppl_joint":
            continue  # traced inside the fit program: its time is in the parent's tracing
        label = name.removeprefix("mleppl_") if name != "eager" else f"eager ({p['n']} ops)"
        rows.append((total, f"{label} {p['trace']:.2f}/{p['lower']:.2f}/{p['compile']:.2f}"))
    rows.sort(reverse=True)
    return "; ".join(r for t, r in rows[:4] if t >= 0.02)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    t_start = time.time()
    make_data()
    cases = args.cases.split(",")
    res, rres = {}, {}
    for c in cases:
        res[c] = run_mleppl(c)
        print(c, json.dumps(res[c]), flush=True)
        for tool in CASES[c][2]:
            rres[(c, tool)] = run_r(tool, c)
            print(" ", tool, rres[(c, tool)], flush=True)
    sm = run_statsmodels_small()
    have_r = any(v is not None for v in rres.values())
    versions = ""
    if have_r:
        vs = {k[1]: v["version"] for k, v in rres.items() if v}
        versions = ", ".join(f"{k} {v}" for k, v in sorted(vs.items()) if k != "stats")
        r_ver = next(v["R"] for v in rres.values() if v)
        versions = f"R {r_ver}" + (f", {versions}" if versions else "")
    any_res = next(iter(res.values()))
    lines = [
        START,
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `benchmarks/bench_latency.py` on this project's 2-core "
        f"CPU machine (jax {any_res['jax']}, numpyro {any_res['numpyro']}"
        + (f"; {versions}" if versions else "; R not installed: no R column")
        + f"; statsmodels with one BLAS thread), {(time.time() - t_start) / 60:.1f} min. Every cell "
        "is a fresh process with the persistent compilation cache off; *first* is the first call "
        "(import not included), *warm* the best of the repeats. *Held by*: the programs that hold "
        "the first call, as tracing/lowering/XLA-compilation seconds (`fit` is the compiled fit: "
        "optimizer, Hessian, Jacobians; `eager` the small programs JAX compiles for single "
        "operations while the model is bound).",
        "",
        "| case | target | mleppl first (s) | mleppl warm (s) | held by | lme4 first / warm (s) | glmmTMB first / warm (s) |",
        "|---|---|---|---|---|---|---|",
    ]

    def rcell(c, tool):
        r = rres.get((c, tool))
        return f"{r['first']:.2f} / {r['warm']:.3f}" if r else "–"

    for c in cases:
        what, target, _ = CASES[c]
        r = res[c]
        tgt = f"≤ {target:g} s" if target else "–"
        lme4 = rcell(c, "lme4") if c != "glm" else "R `glm.fit` " + rcell(c, "stats")
        lines.append(
            f"| {what} | {tgt} | {r['first']:.2f} | {r['warm']:.4f} | {breakdown(r['programs'])} | "
            f"{lme4} | {rcell(c, 'glmmTMB')} |"
        )
    if "small" in res:
        s = sm["small"]
        lines += [
            "",
            f"Warm logistic fit with standard errors at 10⁴ × 10: mleppl {res['small']['warm'] * 1e3:.2f} ms, "
            f"statsmodels `Logit(...).fit(method='newton')` {s['warm'] * 1e3:.2f} ms "
            f"(**{s['warm'] / res['small']['warm']:.2f}×**; target ≥ 2×). statsmodels' first call at "
            f"10⁵ × 10: {sm['glm']['first']:.2f} s.",
        ]
    lines += ["", END]
    block = "\n".join(lines)
    write_block(Path(args.out), START, END, block, "## Time to first result")
    print(block)


if __name__ == "__main__":
    main()
