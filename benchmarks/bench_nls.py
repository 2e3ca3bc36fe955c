"""NIST StRD nonlinear regression: mleppl vs scipy.optimize.least_squares, success and time per fit.

The 27 problems of ``tests/data/nist_strd/nist_strd.json`` from both published starts (54
fits per configuration). mleppl fits the Gaussian likelihood with σ free (from 1) through
``fit_mle`` (exact AD Hessians; the time includes its standard errors); scipy fits the
residuals with ``least_squares`` (finite-difference Jacobian, its default) by ``trf`` and
``lm`` at default tolerances and at ``ftol = xtol = gtol = 1e-15`` (also with the more accurate
``3-point`` Jacobian). A fit succeeds when all
parameters match the certified values to 1e-6 relative and the RSS to 1e-8 relative
(Lanczos1: 1e-2, see ``tests/test_nist_strd.py``); mleppl's RSS is n·σ̂². Each tool runs
in its own process (NumPy timings in a process that has run JAX are distorted), scipy with
one BLAS thread. Times are medians of ``--repeats`` warm fits; mleppl's first (compiling)
call per problem is reported separately.

Usage: python benchmarks/bench_nls.py [--repeats R] [--out docs/benchmarks_nls.md]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests" / "test_nist_strd.py"
STARTS = ("start1", "start2")


def _load_problems(numpy_only: bool):
    """The test module's data, formulas and success rule; with ``numpy_only`` its jnp is NumPy."""
    if numpy_only:
        # the formulas call jnp.* at run time: bind NumPy instead, and keep JAX, NumPyro and
        # mleppl out of this process
        jax_stub = types.ModuleType("jax")
        jax_stub.numpy = np
        numpyro_stub = types.ModuleType("numpyro")
        numpyro_stub.distributions = types.ModuleType("numpyro.distributions")
        sys.modules.update(
            {
                "jax": jax_stub,
                "jax.numpy": np,
                "numpyro": numpyro_stub,
                "numpyro.distributions": numpyro_stub.distributions,
                "mleppl": types.ModuleType("mleppl"),
            }
        )
    spec = importlib.util.spec_from_file_location("nist_problems", TESTS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _success(mod, name, b, rss) -> bool:
    prob = mod.DATA[name]
    cert = np.asarray(prob["certified"])
    ok_b = bool(np.all(np.abs(np.asarray(b) - cert) <= mod.PARAM_RTOL * np.abs(cert)))
    rtol = mod.RSS_RTOL.get(name, 1e-8)
    return ok_b and abs(rss - prob["certified_rss"]) <= rtol * prob["certified_rss"]


def run_mleppl(repeats: int) -> list[dict]:
    import warnings

    mod = _load_problems(numpy_only=False)
    import mleppl

    rows = []
    for name in mod.DATA:
        x, y = mod.xy(name)
        for start in STARTS:
            init = {"b": mod.DATA[name][start], "sigma": 1.0}
            times = []
            for _ in range(repeats + 1):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t = time.perf_counter()
                    res = mleppl.fit_mle(mod.MODELS[name], x, y=y, init=init)
                    times.append(time.perf_counter() - t)
            rss = len(y) * float(res.params["sigma"]) ** 2
            rows.append(
                dict(
                    tool="mleppl",
                    config="default",
                    name=name,
                    start=start,
                    ok=_success(mod, name, np.asarray(res.params["b"]), rss),
                    converged=bool(res.converged),
                    time=float(np.median(times[1:])),
                    first=times[0],
                    steps=int(getattr(res, "n_steps", -1)),
                )
            )
            print(rows[-1], flush=True)
    return rows


def run_scipy(repeats: int) -> list[dict]:
    from scipy.optimize import least_squares

    mod = _load_problems(numpy_only=True)
    configs = {
        "trf default": dict(method="trf"),
        "lm default": dict(method="lm"),
        "trf tight": dict(method="trf", ftol=1e-15, xtol=1e-15, gtol=1e-15),
        "lm tight": dict(method="lm", ftol=1e-15, xtol=1e-15, gtol=1e-15),
        "trf tight, 3-point Jacobian": dict(method="trf", ftol=1e-15, xtol=1e-15, gtol=1e-15, jac="3-point"),
        "lm tight, 3-point Jacobian": dict(method="lm", ftol=1e-15, xtol=1e-15, gtol=1e-15, jac="3-point"),
    }
    rows = []
    for name in mod.DATA:
        x, y = mod.xy(name)
        f = mod.FORMULAS[name]

        def resid(b, f=f, x=x, y=y):
            return y - f(b, x)

        for start in STARTS:
            b0 = np.asarray(mod.DATA[name][start], dtype=float)
            for config, kw in configs.items():
                times = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    with np.errstate(all="ignore"):
                        sol = least_squares(resid, b0, **kw)
                    times.append(time.perf_counter() - t)
                rss = float(np.sum(resid(sol.x) ** 2))
                rows.append(
                    dict(
                        tool="scipy",
                        config=config,
                        name=name,
                        start=start,
                        ok=_success(mod, name, sol.x, rss),
                        converged=bool(sol.success),
                        time=float(np.median(times)),
                        first=float(times[0]),
                        steps=int(sol.nfev),
                    )
                )
    return rows


def _worker(tool: str, repeats: int) -> list[dict]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if tool == "mleppl":
        env.pop("OPENBLAS_NUM_THREADS")
        env.pop("OMP_NUM_THREADS")
        env.pop("MKL_NUM_THREADS")
    out = subprocess.run(
        [sys.executable, __file__, "--worker", tool, "--repeats", str(repeats)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _markdown(rows: list[dict], repeats: int) -> str:
    by = {}
    for r in rows:
        key = "mleppl fit_mle (Newton, exact Hessian)" if r["tool"] == "mleppl" else f"scipy {r['config']}"
        by.setdefault(key, []).append(r)
    lines = [
        "## NIST StRD nonlinear regression (27 problems × 2 starts)",
        "",
        f"Measured with `python benchmarks/bench_nls.py` on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; median of {repeats} warm fits, "
        "each tool in its own process. Success: certified parameters to 1e-6 relative and certified "
        "RSS to 1e-8 relative (Lanczos1 to 1e-2: its residuals are at the rounding level of the model).",
        "",
        "| solver | solved | reported success | median time per fit | total time (54 fits) |",
        "|---|---|---|---|---|",
    ]
    for key, rs in by.items():
        t = np.array([r["time"] for r in rs])
        lines.append(
            f"| {key} | {sum(r['ok'] for r in rs)}/54 | {sum(r['converged'] for r in rs)}/54 "
            f"| {1e3 * np.median(t):.2f} ms | {t.sum():.3f} s |"
        )
    ml = by.get("mleppl fit_mle (Newton, exact Hessian)", [])
    if ml:
        first = np.array([r["first"] for r in ml])
        lines += [
            "",
            f"mleppl's first call per problem and start includes tracing and compilation: median "
            f"{np.median(first):.2f} s (the second start of a problem reuses the program).",
        ]
        t = np.array([r["time"] for r in ml])
        k = np.array([r["steps"] for r in ml], dtype=float)
        fixed, per_step = np.linalg.lstsq(np.column_stack([np.ones_like(k), k]), t, rcond=None)[0]
        slow = sorted((r for r in ml if r["converged"]), key=lambda r: -r["time"])[:3]
        unconv = [r for r in ml if not r["converged"]]
        lines += [
            "",
            "### Where mleppl is slower, and why",
            "",
            f"Per fit, mleppl took {1e3 * np.median(t):.1f} ms (median) against scipy's 1–2.5 ms. A "
            f"least-squares fit of time on accepted Newton steps gives {1e3 * fixed:.1f} ms per call plus "
            f"{1e3 * per_step:.3f} ms per step (median {np.median(k):.0f} steps): the compiled "
            "optimizer loop itself (exact AD Hessian, two eigendecompositions of a ≤ 10 × 10 "
            "matrix and a trust-region subproblem per step) is cheap; most of the time is "
            "`fit_mle`'s fixed work outside the loop: binding and checking the data, the "
            "program-cache look-up and dispatch, the constrained parameters with their "
            "Jacobian, the standard errors from the inverse Hessian at the returned point, and "
            "building the result. The longest fits are the slow-converging problems "
            + ", ".join(
                f"{r['name']} (start {r['start'][-1]}: {r['steps']} steps, {1e3 * r['time']:.0f} ms)"
                for r in slow
            )
            + ". Fits not reported as converged ("
            + ", ".join(f"{r['name']} start {r['start'][-1]}: {1e3 * r['time']:.0f} ms" for r in unconv)
            + "; Lanczos1 ends at its rounding-noise floor) also pay for `fit_mle`'s diagnosis of a "
            "failed fit. The first call for a model also traces and compiles it (see above): with fresh "
            "models mleppl is several hundred times slower than scipy per fit. scipy's advantage is its "
            "cheap per-step cost on a small residual vector (finite-difference Jacobian); its "
            "failures are stops at its evaluation budget (MGH17, Bennett5), stops reported as "
            "successful far from the optimum (BoxBOD start 1), and parameters limited to ~1e-5 "
            "relative by the finite-difference Jacobian (Kirby2, Hahn1) even at tolerance 1e-15. "
            "mleppl fits σ as well and gives the standard errors in the same call.",
        ]
    failed = {k: [f"{r['name']} ({r['start'][-1]})" for r in rs if not r["ok"]] for k, rs in by.items()}
    lines += ["", "Unsolved fits:", ""]
    for k, f in failed.items():
        lines.append(f"- {k}: {', '.join(f) if f else 'none'}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks_nls.md"))
    ap.add_argument("--worker", choices=["mleppl", "scipy"])
    ap.add_argument("--from-cache", action="store_true", help="rewrite the table from the last run's JSON")
    args = ap.parse_args()
    if args.worker:
        rows = (run_mleppl if args.worker == "mleppl" else run_scipy)(args.repeats)
        print(json.dumps(rows))
        return
    cache = ROOT / ".cache" / "bench_nls.json"
    if args.from_cache:
        rows = json.loads(cache.read_text())
    else:
        rows = _worker("scipy", args.repeats) + _worker("mleppl", args.repeats)
        cache.parent.mkdir(exist_ok=True)
        cache.write_text(json.dumps(rows, indent=1))
    md = _markdown(rows, args.repeats)
    Path(args.out).write_text(md)
    print(md)


if __name__ == "__main__":
    main()
