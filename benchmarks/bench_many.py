"""Many small models: mleppl.fit_many vs a statsmodels NegativeBinomial loop (per-gene NB2 GLMs).

B datasets of n = 200 counts with p = 3 covariates (shared design, one count vector per
"gene"); each tool in its own fresh process, statsmodels with one BLAS thread (its faster
setting on this 2-core machine). mleppl's time is the whole ``fit_many`` call after a first
(compiling) call on the same shapes; statsmodels' is its loop of ``NegativeBinomial(...).fit``
with standard errors. Estimates are compared on the fits both report as converged.

Usage: python benchmarks/bench_many.py [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import ROOT, run_json, worker_env, write_block

CACHE = ROOT / ".cache" / "bench"
START, END = "<!-- bench_many:start -->", "<!-- bench_many:end -->"


def make_data(b: int, n: int = 200, seed: int = 0) -> Path:
    path = CACHE / f"nb2_{b}_{n}.npz"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.binomial(1, 0.5, n)]).astype(float)
    beta = np.column_stack([rng.normal(1.5, 0.5, b), rng.normal(0, 0.3, b), rng.normal(0, 0.3, b)])
    mu = np.exp(beta @ X.T)
    phi = rng.uniform(0.5, 5.0, size=(b, 1))
    y = rng.negative_binomial(phi, phi / (phi + mu)).astype(float)
    np.savez(path, X=X, y=y)
    return path


WORKER = r"""
import json, sys, time, warnings
import numpy as np
tool, path, repeat = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
starts = len(sys.argv) > 4 and sys.argv[4] == "starts"
d = np.load(path); X, y = d["X"], d["y"]
if tool == "statsmodels":
    import statsmodels.api as sm
    def run():
        est, ok = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for yi in y:
                r = sm.NegativeBinomial(yi, X, loglike_method="nb2").fit(method="newton", disp=0, maxiter=200)
                est.append(np.r_[r.params[:3], 1.0 / r.params[3]]); ok.append(bool(r.mle_retvals["converged"]))
                r.bse
        return np.array(est), np.array(ok)
else:
    import jax.numpy as jnp, numpyro, numpyro.distributions as dist
    import mleppl
    def nb2(X, y=None):
        b = numpyro.sample("b", dist.Normal(0, 5).expand([X.shape[1]]).to_event(1))
        phi = numpyro.sample("phi", dist.Exponential(1.0))
        with numpyro.plate("n", X.shape[0]):
            numpyro.sample("y", dist.NegativeBinomial2(jnp.exp(X @ b), phi), obs=y)
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            init = None
            if starts:  # per-fit intercept at the log mean count (statsmodels starts from a Poisson fit)
                b0 = np.zeros((y.shape[0], X.shape[1]))
                b0[:, 0] = np.log(np.maximum(y.mean(axis=1), 1e-3))
                init = {"b": b0}
            r = mleppl.fit_many(nb2, X, y=y, init=init)
        return np.column_stack([r.params["b"], r.params["phi"]]), np.asarray(r.converged)
t0 = time.perf_counter(); est, ok = run(); first = time.perf_counter() - t0
again = first
if repeat:
    t0 = time.perf_counter(); est, ok = run(); again = time.perf_counter() - t0
np.save(path + (f".{tool}-{'starts' if starts else 'plain'}.npy" if tool == "mleppl" else f".{tool}.npy"), np.column_stack([est, ok]))
print(json.dumps({"first": first, "time": again, "converged": int(ok.sum())}))
"""


def run(tool: str, path: Path, repeat: bool = True, starts: bool = False) -> dict:
    env = worker_env(one_blas_thread=tool == "statsmodels")
    argv = ["-c", WORKER, tool, str(path), "1" if repeat else "0", "starts" if starts else "plain"]
    return run_json(argv, env, tool)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--sizes", default="400,20000")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds at sizes <= 2000")
    args = ap.parse_args()
    lines = [
        START,
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `benchmarks/bench_many.py` on this project's shared 2-core "
        "CPU machine (other jobs running: absolute times are noisy): NB2 GLMs, n = 200, p = 3 "
        "(+ dispersion), one per dataset; statsmodels `NegativeBinomial(loglike_method='nb2').fit(method='newton')` (its faster and tighter method here) in a loop "
        "with one BLAS thread; mleppl `fit_many`. Standard errors included in both. *First call*: a "
        "fresh process's first `fit_many` (compilation included, persistent cache off); *repeat*: the "
        "same call again; *compile ≈ first − repeat*. Each tool in its own process, rounds interleaved "
        f"({args.rounds} at 400 fits, 1 at 20,000), minima.",
        "",
        "| fits | mleppl start | statsmodels loop (s) | mleppl repeat (s) | speed-up, repeat | mleppl first call (s) | speed-up, first call | compile ≈ (s) | converged mleppl / statsmodels | max rel. Δ estimates (both converged) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for b in [int(s) for s in args.sizes.split(",")]:
        path = make_data(b)
        rounds = args.rounds if b <= 2000 else 1
        ms, mi, ss = [], [], []
        for _ in range(rounds):
            ms.append(run("mleppl", path))
            mi.append(run("mleppl", path, starts=True))
            ss.append(run("statsmodels", path, repeat=False))
        s = {"time": min(r["time"] for r in ss), "converged": ss[-1]["converged"]}
        es = np.load(str(path) + ".statsmodels.npy")
        for label, rs in (("default", ms), ("per-fit intercept", mi)):
            m = {k: min(r[k] for r in rs) for k in ("first", "time")} | {"converged": rs[-1]["converged"]}
            em = np.load(str(path) + f".mleppl-{'starts' if rs is mi else 'plain'}.npy")
            both = (em[:, -1] > 0) & (es[:, -1] > 0)
            finite = both & np.all(np.isfinite(em[:, :4]), axis=1) & np.all(np.isfinite(es[:, :4]), axis=1)
            rel = np.max(np.abs(em[finite, :4] - es[finite, :4]) / np.maximum(np.abs(es[finite, :4]), 1e-8))
            note = (
                f" ({int((both & ~finite).sum())} with a non-finite value left out)"
                if (both & ~finite).any()
                else ""
            )
            lines.append(
                f"| {b:,} | {label} | {s['time']:.2f} | {m['time']:.2f} | **{s['time'] / m['time']:.1f}×** | "
                f"{m['first']:.2f} | {s['time'] / m['first']:.1f}× | {m['first'] - m['time']:.1f} | "
                f"{m['converged']} / {s['converged']} | {rel:.1e}{note} |"
            )
            print(lines[-1], flush=True)
    lines += ["", END]
    block = "\n".join(lines)
    write_block(Path(args.out), START, END, block, "## Many small models: `fit_many`")
    print(block)


if __name__ == "__main__":
    main()
