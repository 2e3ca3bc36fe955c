"""Crossed and nested random effects: mleppl's Laplace fits against lme4 and glmmTMB.

Each tool fits each case in its own fresh process (mleppl: this script run as a worker; R:
``benchmarks/_crossed_R.R`` via ``Rscript``, reading the same data as CSV). Per fit: the
first call (mleppl: with JAX's persistent compilation cache off, so it includes tracing and
compilation; R: after loading the package and reading the data), the warm time (median of
``--repeats`` refits in the same process), the peak resident memory of the process
(Python: ``resource.getrusage(RUSAGE_SELF).ru_maxrss``; R: ``VmHWM`` from
``/proc/self/status``, the same high-water mark), the log-likelihood and its relative
difference to the R reference (lme4 for the LMMs; glmmTMB for the GLMMs, whose Laplace value
is exact, where glmer's reported value carries its PIRLS tolerance, ~1e-4 here).

Cases (seeded simulated data in ``.cache/bench/crossed_*.npz`` and ``.csv``):

1. ``insteval``: InstEval-sized crossed LMM, 73,421 rows, 2,972 students × 1,128 lecturers
   (every level appears; per-student counts 1 + Gamma-like, mean ≈ 24.7 as in InstEval;
   per-lecturer counts ≥ 10 and heavy-tailed), y = 3 + 0.2 x + u_s + v_d + e; ``lmer``.
2. ``nested``: 100,000 rows, 2,000 schools × 5 classes × 10 pupils, ``(1 | school/class)``;
   ``lmer``.
3. ``logit``: crossed logistic GLMM, 40,000 rows, 600 × 300 crossed intercepts; glmmTMB and
   ``glmer(nAGQ = 1)``.
4. ``salamanders``: ``glmmTMB::Salamanders`` (``benchmarks/data/salamanders.csv``), Poisson,
   site and observation-level intercepts; glmmTMB.
5. ``movielens`` (``--movielens``): MovieLens-1M-sized crossed LMM, 10⁶ rows, 6,040 users ×
   3,706 movies; mleppl only.

A failed mleppl fit (e.g. more random-effect coordinates than the dense inner Hessian takes)
is reported as ``{"error": ...}`` and shown in the table.

Usage: python benchmarks/bench_crossed.py [--out docs/benchmarks.md] [--repeats R]
           [--only NAME[,NAME]] [--r-only] [--tiny] [--movielens]
``--tiny`` shrinks every case about 50× (smoke test); ``--r-only`` runs only the R workers
and prints their results. The docs block is written only by a full run (no ``--only``,
``--r-only`` or ``--tiny``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import ROOT, run_json, worker_env, write_block

HERE = Path(__file__).resolve().parent
CACHE = ROOT / ".cache" / "bench"
START, END = "<!-- bench_crossed:start -->", "<!-- bench_crossed:end -->"
HEADING = "## Crossed and nested random effects"
SPP = ["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"]  # glmmTMB::Salamanders' level order

# case: (description, R tools (the first is the reference), in the default set)
CASES = {
    "insteval": (
        "InstEval-sized crossed LMM: 73,421 rows, 2,972 students × 1,128 lecturers",
        ("lme4",),
        True,
    ),
    "nested": ("nested LMM: 100,000 rows, 2,000 schools / 10,000 classes", ("lme4",), True),
    "logit": ("crossed logistic GLMM: 40,000 rows, 600 × 300", ("glmmTMB", "lme4"), True),
    "salamanders": (
        "Salamanders Poisson GLMM: 644 rows, 23 sites + 644 observation effects",
        ("glmmTMB",),
        True,
    ),
    "movielens": ("MovieLens-1M-sized crossed LMM: 10⁶ rows, 6,040 users × 3,706 movies", (), False),
}
R_CALL = {
    ("insteval", "lme4"): "lmer(y ~ x + (1 | s) + (1 | d), REML = FALSE)",
    ("nested", "lme4"): "lmer(y ~ x + (1 | school/class), REML = FALSE)",
    ("logit", "glmmTMB"): "glmmTMB(y ~ x + (1 | a) + (1 | b), family = binomial)",
    ("logit", "lme4"): "glmer(y ~ x + (1 | a) + (1 | b), family = binomial, nAGQ = 1)",
    ("salamanders", "glmmTMB"): "glmmTMB(count ~ spp + mined + (1 | site) + (1 | obs), family = poisson)",
}


# ------------------------------------------------------------------------------------- data
def _counts(rng, n_levels: int, total: int, weights: np.ndarray, minimum: int) -> np.ndarray:
    """Integer counts ≥ ``minimum`` summing to ``total``, roughly proportional to ``weights``."""
    c = np.maximum(minimum, np.round(weights * total / weights.sum())).astype(np.int64)
    while (diff := total - int(c.sum())) != 0:
        if diff > 0:
            np.add.at(c, rng.choice(n_levels, diff, p=weights / weights.sum()), 1)
        else:
            idx = np.flatnonzero(c > minimum)
            take = rng.choice(idx, min(-diff, idx.size), replace=False)
            c[take] -= 1
    return c


def _crossed_ids(rng, n: int, n_a: int, n_b: int, w_a, w_b, min_a: int, min_b: int):
    """Row-level ids of two crossed factors, every level present, counts as given."""
    a = np.repeat(np.arange(n_a), _counts(rng, n_a, n, w_a, min_a))
    b = rng.permutation(np.repeat(np.arange(n_b), _counts(rng, n_b, n, w_b, min_b)))
    return a, b


def _csv(path: Path, cols: dict) -> None:
    names = list(cols)
    fmt = ["%d" if np.issubdtype(np.asarray(cols[k]).dtype, np.integer) else "%.17g" for k in names]
    arr = np.column_stack([np.asarray(cols[k], dtype=np.float64) for k in names])
    np.savetxt(path, arr, delimiter=",", header=",".join(names), comments="", fmt=fmt)


def sizes(case: str, tiny: bool) -> dict:
    k = 50 if tiny else 1
    return {
        "insteval": {"n": 73_421 // k, "na": 2_972 // k, "nb": 1_128 // k},
        "nested": {"n": 100_000 // k, "na": 2_000 // k, "per_school": 5},
        "logit": {"n": 40_000 // k, "na": 600 // k, "nb": 300 // k},
        "salamanders": {},
        "movielens": {"n": 1_000_000 // k, "na": 6_040 // k, "nb": 3_706 // k},
    }[case]


def make_data(case: str, tiny: bool) -> tuple[Path, Path | None]:
    """The case's data as ``.npz`` (mleppl) and ``.csv`` (R; none for movielens), seeded."""
    tag = f"crossed_{case}" + ("_tiny" if tiny else "")
    npz, csv = CACHE / f"{tag}.npz", CACHE / f"{tag}.csv"
    if npz.exists() and (case == "movielens" or csv.exists()):
        return npz, (None if case == "movielens" else csv)
    CACHE.mkdir(parents=True, exist_ok=True)
    sz = sizes(case, tiny)
    rng = np.random.default_rng(
        {"insteval": 1, "nested": 2, "logit": 3, "salamanders": 4, "movielens": 5}[case]
    )
    if case == "insteval":
        n, na, nb = sz["n"], sz["na"], sz["nb"]
        # InstEval: students 1-92 ratings (mean 24.7, sd 15.2), lecturers 10-792 (median 31)
        s, d = _crossed_ids(rng, n, na, nb, 1 + rng.gamma(2.6, 9.1, na), rng.lognormal(3.0, 1.1, nb), 1, 10)
        x = rng.normal(size=n)
        y = 3 + 0.2 * x + rng.normal(0, 0.32, na)[s] + rng.normal(0, 0.52, nb)[d] + rng.normal(0, 1.18, n)
        cols = {"y": y, "x": x, "s": s, "d": d}
    elif case == "nested":
        n, ns, per = sz["n"], sz["na"], sz["per_school"]
        nc = ns * per
        cls = np.repeat(np.arange(nc), n // nc)
        school = cls // per
        x = rng.normal(size=n)
        y = 1 + 0.5 * x + rng.normal(0, 0.5, ns)[school] + rng.normal(0, 0.3, nc)[cls] + rng.normal(0, 1, n)
        cols = {"y": y, "x": x, "school": school, "class": cls}
    elif case == "logit":
        n, na, nb = sz["n"], sz["na"], sz["nb"]
        a = rng.permutation(np.arange(n) % na)
        b = rng.permutation(np.arange(n) % nb)
        x = rng.normal(size=n)
        eta = -0.5 + 0.7 * x + rng.normal(0, 0.8, na)[a] + rng.normal(0, 0.6, nb)[b]
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(np.int64)
        cols = {"y": y, "x": x, "a": a, "b": b}
    elif case == "movielens":
        n, na, nb = sz["n"], sz["na"], sz["nb"]
        # MovieLens-1M: every user ≥ 20 ratings, heavy-tailed user and movie counts
        u, m = _crossed_ids(rng, n, na, nb, rng.lognormal(0, 1.0, na), rng.lognormal(0, 1.4, nb), 20, 1)
        x = rng.normal(size=n)
        y = 3.6 + 0.1 * x + rng.normal(0, 0.4, na)[u] + rng.normal(0, 0.5, nb)[m] + rng.normal(0, 0.9, n)
        np.savez(npz, y=y, x=x, a=u, b=m, na=na, nb=nb)
        return npz, None
    else:  # salamanders: the package's data, design as R's treatment contrasts
        import pandas as pd

        df = pd.read_csv(HERE / "data" / "salamanders.csv")
        X = np.column_stack(
            [np.ones(len(df))]
            + [(df["spp"] == s).to_numpy(float) for s in SPP[1:]]
            + [(df["mined"] == "no").to_numpy(float)]
        )
        site = np.unique(df["site"].to_numpy(), return_inverse=True)[1]
        np.savez(npz, X=X, site=site, y=df["count"].to_numpy(np.float64), nsite=int(site.max()) + 1)
        shutil.copy(HERE / "data" / "salamanders.csv", csv)
        return npz, csv
    np.savez(npz, **cols)
    _csv(csv, cols)
    return npz, csv


# ------------------------------------------------------------------------------ mleppl worker
def worker(case: str, npz: str, repeats: int) -> dict:
    """Fit the case with mleppl as a user would; run in a fresh process."""
    import resource

    t_import = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    import mleppl

    t_import = time.perf_counter() - t_import
    d = {k: v for k, v in np.load(npz).items()}
    out = {
        "tool": "mleppl",
        "case": case,
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "mleppl": getattr(mleppl, "__version__", "?"),
        "import_s": t_import,
    }

    if case in ("insteval", "movielens"):
        names = ("s", "d") if case == "insteval" else ("a", "b")
        x, ia, ib, y = d["x"], d[names[0]], d[names[1]], d["y"]
        NA, NB = int(ia.max()) + 1, int(ib.max()) + 1

        def model(x, s, dd, y=None):
            b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
            su = numpyro.sample("sigma_s", dist.HalfNormal(2))
            sd = numpyro.sample("sigma_d", dist.HalfNormal(2))
            sigma = numpyro.sample("sigma", dist.HalfNormal(2))
            with numpyro.plate("student", NA):
                us = numpyro.sample("u_s", dist.Normal(0, su))
            with numpyro.plate("lecturer", NB):
                ud = numpyro.sample("u_d", dist.Normal(0, sd))
            with numpyro.plate("obs", x.shape[0]):
                numpyro.sample("y", dist.Normal(b[0] + b[1] * x + us[s] + ud[dd], sigma), obs=y)

        args, random, sds = (x, ia, ib), ["u_s", "u_d"], ("sigma_s", "sigma_d", "sigma")
        out["n_random"] = NA + NB
    elif case == "nested":
        x, school, cls, y = d["x"], d["school"], d["class"], d["y"]
        NS, NC = int(school.max()) + 1, int(cls.max()) + 1

        def model(x, school, cls, y=None):
            b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
            s_sch = numpyro.sample("sigma_school", dist.HalfNormal(2))
            s_cls = numpyro.sample("sigma_class", dist.HalfNormal(2))
            sigma = numpyro.sample("sigma", dist.HalfNormal(2))
            with numpyro.plate("school", NS):
                us = numpyro.sample("u_school", dist.Normal(0, s_sch))
            with numpyro.plate("class", NC):
                uc = numpyro.sample("u_class", dist.Normal(0, s_cls))
            with numpyro.plate("obs", x.shape[0]):
                numpyro.sample("y", dist.Normal(b[0] + b[1] * x + us[school] + uc[cls], sigma), obs=y)

        args, random, sds = (
            (x, school, cls),
            ["u_school", "u_class"],
            ("sigma_school", "sigma_class", "sigma"),
        )
        out["n_random"] = NS + NC
    elif case == "logit":
        x, a, bb, y = d["x"], d["a"], d["b"], d["y"].astype(np.float64)
        NA, NB = int(a.max()) + 1, int(bb.max()) + 1

        def model(x, a, bb, y=None):
            b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
            sa = numpyro.sample("sigma_a", dist.HalfNormal(2))
            sb = numpyro.sample("sigma_b", dist.HalfNormal(2))
            with numpyro.plate("a", NA):
                ua = numpyro.sample("u_a", dist.Normal(0, sa))
            with numpyro.plate("b_levels", NB):
                ub = numpyro.sample("u_b", dist.Normal(0, sb))
            with numpyro.plate("obs", x.shape[0]):
                numpyro.sample("y", dist.Bernoulli(logits=b[0] + b[1] * x + ua[a] + ub[bb]), obs=y)

        args, random, sds = (x, a, bb), ["u_a", "u_b"], ("sigma_a", "sigma_b")
        out["n_random"] = NA + NB
    elif case == "salamanders":
        X, site, y, NSITE = d["X"], d["site"], d["y"], int(d["nsite"])

        def model(X, site, y=None):
            b = numpyro.sample("b", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
            s_site = numpyro.sample("sigma_site", dist.HalfNormal(2))
            s_obs = numpyro.sample("sigma_obs", dist.HalfNormal(2))
            with numpyro.plate("site", NSITE):
                u = numpyro.sample("u_site", dist.Normal(0, s_site))
            with numpyro.plate("obs", X.shape[0]):
                e = numpyro.sample("u_obs", dist.Normal(0, s_obs))
                numpyro.sample("y", dist.Poisson(jnp.exp(X @ b + u[site] + e)), obs=y)

        args, random, sds = (X, site), ["u_site", "u_obs"], ("sigma_site", "sigma_obs")
        out["n_random"] = NSITE + X.shape[0]
    else:
        raise ValueError(case)

    def fit():
        r = mleppl.fit_mle(model, *args, y=y, random=random)
        return r

    try:
        t0 = time.perf_counter()
        r = fit()
        out["first"] = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = fit()
            times.append(time.perf_counter() - t0)
        out.update(
            warm=float(np.median(times)) if times else None,
            repeats=repeats,
            loglik=float(r.loglik),
            converged=bool(r.converged),
            message=str(r.message),
            fixef=[float(v) for v in np.ravel(r.params["b"])],
            sd={k: float(r.params[k]) for k in sds},
        )
    except Exception as e:  # reported, not raised: the other cases still run
        out["error"] = f"{type(e).__name__}: {e}"[:2000]
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


# ------------------------------------------------------------------------------------ runners
def run_mleppl(case: str, npz: Path, repeats: int) -> dict:
    try:
        return run_json(
            [str(Path(__file__).resolve()), "--worker", case, str(npz), str(repeats)],
            worker_env(),
            f"mleppl {case}",
        )
    except Exception as e:  # crashed or killed (e.g. out of memory)
        return {"tool": "mleppl", "case": case, "error": f"{type(e).__name__}: {str(e)[-1500:]}"}


def run_r(tool: str, case: str, csv: Path, repeats: int) -> dict:
    if shutil.which("Rscript") is None:
        return {"tool": tool, "case": case, "error": "Rscript not installed"}
    out = subprocess.run(
        ["Rscript", str(HERE / "_crossed_R.R"), tool, case, str(csv), str(repeats)],
        capture_output=True,
        text=True,
        check=False,
        env=worker_env(one_blas_thread=True),
    )
    if out.returncode != 0:
        return {"tool": tool, "case": case, "error": f"Rscript failed: {out.stderr[-1500:]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------- docs
def _fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def table(case: str, results: list[dict]) -> list[str]:
    ref = next((r for r in results if r["tool"] != "mleppl" and "error" not in r), None)
    rows = [
        "| tool | first call (s) | warm (s) | peak RSS (MB) | log-likelihood | rel. Δ log-lik. | max abs. Δ fixed effects |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        name = (
            "mleppl"
            if r["tool"] == "mleppl"
            else f"{r['tool']} {r.get('version', '')} `{R_CALL[(case, r['tool'])]}`".replace("|", "\\|")
        )
        if "error" in r:
            msg = r["error"].strip().splitlines()[-1] if r["error"].strip() else "failed"
            rows.append(
                f"| {name} | failed: {msg[:240].replace('|', '/')} | | {_fmt(r.get('rss_mb'), '.0f')} | | | |"
            )
            continue
        rel = dfe = None
        if ref is not None and r is not ref:
            rel = (r["loglik"] - ref["loglik"]) / abs(ref["loglik"])
            fr = list(ref["fixef"].values())
            fx = r["fixef"] if isinstance(r["fixef"], list) else list(r["fixef"].values())
            dfe = max(abs(p - q) for p, q in zip(fx, fr, strict=True))
        note = "" if r.get("converged", True) else " (not converged)"
        warn = f" ({len(r['warnings'])} warning(s))" if r.get("warnings") else ""
        rows.append(
            f"| {name}{note}{warn} | {r['first']:.2f} | {_fmt(r.get('warm'), '.2f')} | {r['rss_mb']:.0f} | "
            f"{r['loglik']:.6f} | {_fmt(rel, '.2e')} | {_fmt(dfe, '.2e')} |"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated case names: " + ",".join(CASES))
    ap.add_argument("--r-only", action="store_true", help="run only the R workers and print their results")
    ap.add_argument("--tiny", action="store_true", help="every case about 50x smaller (smoke test)")
    ap.add_argument(
        "--movielens", action="store_true", help="also the 10^6-row MovieLens-sized case (mleppl only)"
    )
    ap.add_argument("--worker", nargs=3, metavar=("CASE", "NPZ", "REPEATS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        case, npz, repeats = args.worker
        print(json.dumps(worker(case, npz, int(repeats))), flush=True)
        return
    cases = [c for c in CASES if CASES[c][2] or (c == "movielens" and args.movielens)]
    if args.only:
        cases = args.only.split(",")
        unknown = set(cases) - set(CASES)
        if unknown:
            sys.exit(f"unknown case(s): {sorted(unknown)}")
    t_start = time.time()
    all_res, nrows = {}, {}
    for c in cases:
        npz, csv = make_data(c, args.tiny)
        nrows[c] = int(np.load(npz)["y"].shape[0])
        res = []
        if not args.r_only:
            res.append(run_mleppl(c, npz, args.repeats))
            print(c, json.dumps(res[-1]), flush=True)
        for tool in CASES[c][1]:
            res.append(run_r(tool, c, csv, args.repeats))
            print(c, json.dumps(res[-1]), flush=True)
        all_res[c] = res
    m = next((r for rs in all_res.values() for r in rs if r["tool"] == "mleppl" and "jax" in r), None)
    rv = next((r for rs in all_res.values() for r in rs if r["tool"] != "mleppl" and "R" in r), None)
    versions = []
    if m:
        versions.append(f"mleppl {m['mleppl']}, jax {m['jax']}, numpyro {m['numpyro']}")
    if rv:
        rvers = {r["tool"]: r["version"] for rs in all_res.values() for r in rs if "version" in r}
        versions.append(
            f"R {rv['R']} ({rv['blas'].rsplit('/', 1)[-1]}), "
            + ", ".join(f"{k} {v}" for k, v in sorted(rvers.items()))
        )
    lines = [
        START,
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `benchmarks/bench_crossed.py`"
        + (" (`--tiny`: every case ~50× smaller)" if args.tiny else "")
        + f" on this project's 2-core CPU machine ({'; '.join(versions)}), {(time.time() - t_start) / 60:.1f} min. "
        "Each tool and case is a fresh process. *First call*: mleppl's first fit with the persistent "
        "compilation cache off (tracing and compilation included, import not); R's first fit after "
        "loading the package and reading the CSV. *Warm*: median of "
        f"{args.repeats} refits in the same process. *Peak RSS*: the process's resident high-water mark "
        "(Python `getrusage` `ru_maxrss`; R `VmHWM` from `/proc/self/status`). *rel. Δ log-lik.*: "
        "(log-lik − reference) / |reference|, the reference being the first R row (lme4 for the LMMs, "
        "glmmTMB for the GLMMs: glmer's reported Laplace value carries its PIRLS tolerance, ~1e-4 in "
        "log-likelihood in `tests/data/r_crossed_references.json`). Simulated data are seeded; "
        "see the script's docstring.",
        "",
    ]
    for c in cases:
        what = CASES[c][0] if not args.tiny else f"{CASES[c][0].split(':')[0]} (tiny: {nrows[c]:,} rows)"
        lines += [f"**{what}**", ""]
        lines += table(c, all_res[c]) + [""]
    lines.append(END)
    block = "\n".join(lines)
    if args.only or args.r_only or args.tiny:
        print("(docs not written: partial run)")
    else:
        write_block(Path(args.out), START, END, block, HEADING)
    print(block)


if __name__ == "__main__":
    main()
