"""Random effects: mleppl's Laplace fits against statsmodels MixedLM, and scaling in the number of groups.

Two tables, each tool in its own fresh process (thread pools do not contend; each first call
includes compilation, JAX's persistent cache is off):

1. A logistic GLMM with a random intercept, 20 observations per group, at 500 and 5,000
   groups: mleppl time per repeat fit (and first call); the ratio shows how the cost grows
   with the number of groups (block-diagonal inner Hessian: linear).
2. A Gaussian random-intercept model with 10,000 groups (5 observations each) against
   statsmodels ``MixedLM(reml=False)`` at its faster BLAS setting (one OpenBLAS thread,
   stated in the table), with the log-likelihoods side by side.

Usage: python benchmarks/bench_latent.py [--out docs/benchmarks.md] [--repeats R]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import ROOT, run_json, worker_env, write_block

CACHE = ROOT / ".cache" / "bench"
START, END = "<!-- bench_latent:start -->", "<!-- bench_latent:end -->"


def make_data(kind: str, groups: int, per_group: int, seed: int = 0) -> Path:
    path = CACHE / f"{kind}_{groups}_{per_group}.npz"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per_group)
    x = rng.normal(size=groups * per_group)
    u = rng.normal(0, 0.8, groups)
    eta = -0.3 + 0.7 * x + u[g]
    if kind == "logit":
        y = (rng.uniform(size=eta.shape) < 1 / (1 + np.exp(-eta))).astype(float)
    else:
        y = eta + rng.normal(size=eta.shape)
    np.savez(path, x=x, g=g, y=y, groups=groups)
    return path


WORKER = r"""
import json, sys, time, resource
import numpy as np
tool, path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
d = np.load(path)
x, g, y, G = d["x"], d["g"], d["y"], int(d["groups"])
if tool == "statsmodels":
    import pandas as pd, warnings
    import statsmodels.formula.api as smf
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = smf.mixedlm("y ~ x", df, groups=df["g"]).fit(reml=False)
        return float(r.llf), r.fe_params.values
else:
    import jax.numpy as jnp, numpyro, numpyro.distributions as dist
    import mleppl
    kind = sys.argv[4]
    def model(x, g, y=None):
        b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
        su = numpyro.sample("sigma_u", dist.HalfNormal(2))
        s = numpyro.sample("sigma", dist.HalfNormal(2)) if kind != "logit" else None
        with numpyro.plate("group", G):
            u = numpyro.sample("u", dist.Normal(0, su))
        with numpyro.plate("obs", x.shape[0]):
            eta = b[0] + b[1] * x + u[g]
            if kind == "logit":
                numpyro.sample("y", dist.Bernoulli(logits=eta), obs=y)
            else:
                numpyro.sample("y", dist.Normal(eta, s), obs=y)
    def fit():
        r = mleppl.fit_mle(model, x, g, y=y, random=["u"])
        assert r.converged, r.message
        return float(r.loglik), np.asarray(r.params["b"])
t0 = time.perf_counter(); ll, b = fit(); first = time.perf_counter() - t0
times = []
for _ in range(repeats):
    t0 = time.perf_counter(); ll, b = fit(); times.append(time.perf_counter() - t0)
print(json.dumps({"first": first, "median": float(np.median(times)), "loglik": ll, "b": list(map(float, b)),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
"""


def run(tool: str, path: Path, repeats: int, kind: str = "") -> dict:
    env = worker_env(one_blas_thread=tool == "statsmodels")  # statsmodels' faster setting here
    return run_json(["-c", WORKER, tool, str(path), str(repeats), kind], env, f"{tool} on {path.name}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    lines = [START, "", f"Measured {time.strftime('%Y-%m-%d')} on this 2-core CPU machine.", ""]
    lines += [
        "**Logistic GLMM, random intercept, 20 observations per group** (mleppl, Laplace):",
        "",
        "| groups | rows | first call (s) | repeat fit (s) | log-likelihood |",
        "|---|---|---|---|---|",
    ]
    res = {}
    for groups in (500, 5000):
        r = run("mleppl", make_data("logit", groups, 20), args.repeats, "logit")
        res[groups] = r
        lines.append(
            f"| {groups} | {groups * 20} | {r['first']:.2f} | {r['median']:.3f} | {r['loglik']:.4f} |"
        )
        print(groups, r, flush=True)
    ratio = res[5000]["median"] / res[500]["median"]
    lines += [
        "",
        f"Time ratio 5,000 / 500 groups: **{ratio:.1f}** (10× the groups; target ≤ 15, i.e. linear).",
        "",
    ]
    path = make_data("gauss", 10000, 5)
    m = run("mleppl", path, args.repeats, "gauss")
    s = run("statsmodels", path, 1)
    print(m, s, flush=True)
    lines += [
        "**Gaussian random intercept, 10,000 groups × 5 observations** (statsmodels `MixedLM(reml=False)` "
        "with one BLAS thread, its faster setting here):",
        "",
        "| tool | first call (s) | repeat fit (s) | log-likelihood | peak RSS (MB) |",
        "|---|---|---|---|---|",
        f"| mleppl (Laplace = exact here) | {m['first']:.2f} | {m['median']:.2f} | {m['loglik']:.6f} | {m['rss_mb']:.0f} |",
        f"| statsmodels MixedLM | {s['first']:.2f} | {s['median']:.2f} | {s['loglik']:.6f} | {s['rss_mb']:.0f} |",
        "",
        f"Speed-up (repeat fits): **{s['median'] / m['median']:.1f}×**; |Δ log-likelihood| = "
        f"{abs(m['loglik'] - s['loglik']):.2g}.",
        "",
        END,
    ]
    block = "\n".join(lines)
    write_block(Path(args.out), START, END, block, "## Random effects (Laplace)")
    print(block)


if __name__ == "__main__":
    main()
