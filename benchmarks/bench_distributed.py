"""A logistic fit split over two jax.distributed processes (gloo, CPU) against one process.

Each process generates its own half of the rows (the union is the one-process dataset) and
fits; reported per process: first-call and warm wall time, peak resident memory, and the
bytes the fit program reduces across processes, read from its optimized HLO (the
all-reduce operations of the compiled fit loop: value, gradient and Hessian, parameter
sized). On this 2-core machine the two processes share the cores, so the figure of interest
is memory per process and the size of the exchange, not a speed-up.

Usage: python benchmarks/bench_distributed.py [--n 10000000] [--p 50] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, worker_env, write_block

START, END = "<!-- bench_distributed:start -->", "<!-- bench_distributed:end -->"
WORKER = str(Path(__file__).parent / "_distributed_worker.py")
BYTES = {"f64": 8, "f32": 4, "s64": 8, "s32": 4, "pred": 1}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run(nproc: int, n: int, p: int, extra_env: dict | None = None) -> list[dict]:
    port = _port()
    env = worker_env(**(extra_env or {}))
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, str(nproc), str(i), str(port), str(n), str(p)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(nproc)
    ]
    out = []
    for q in procs:
        so, se = q.communicate(timeout=1800)
        if q.returncode != 0:
            raise RuntimeError(se[-3000:])
        out.append(json.loads(so.strip().splitlines()[-1]))
    return out


def reduced_bytes(n: int, p: int) -> tuple[int, int]:
    """(number of all-reduce operations, bytes they reduce) in the optimized fit program of a
    two-process run, from XLA's HLO dump (a small n: the program's exchanges do not depend on n)."""
    with tempfile.TemporaryDirectory() as d:
        run(2, n, p, {"XLA_FLAGS": f"--xla_dump_to={d} --xla_dump_hlo_as_text"})
        texts = [f.read_text() for f in Path(d).glob("*mleppl_fit*after_optimizations.txt")]
    count = total = 0
    for text in texts:
        for line in text.splitlines():
            if " all-reduce(" in line or " all-reduce-start(" in line:
                lhs = line.split("=", 1)[1].split("all-reduce", 1)[0]
                for dtype, dims in re.findall(r"(f64|f32|s64|s32|pred)\[([0-9,]*)\]", lhs):
                    size = 1
                    for d_ in filter(None, dims.split(",")):
                        size *= int(d_)
                    total += size * BYTES[dtype]
                count += 1
    return count, total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--p", type=int, default=50)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    a = ap.parse_args()
    one = run(1, a.n, a.p)[0]
    two = run(2, a.n, a.p)
    count, nbytes = reduced_bytes(200_000, a.p)
    diff = max(abs(x - y) for r in two for x, y in zip(r["b"], one["b"]))
    sediff = max(abs(x / y - 1) for r in two for x, y in zip(r["se"], one["se"]))
    rows = [f"| 1 process | {one['first_s']:.1f} s | {one['warm_s']:.1f} s | {one['peak_rss_gb']:.2f} GB |"]
    rows += [
        f"| 2 processes, process {r['pid']} | {r['first_s']:.1f} s | {r['warm_s']:.1f} s | {r['peak_rss_gb']:.2f} GB |"
        for r in two
    ]
    block = "\n".join(
        [
            START,
            f"Logistic regression, n = {a.n:,}, p = {a.p} (float64: {a.n * a.p * 8 / 2**30:.1f} GiB of X), "
            "`fit_mle` with standard errors, this 2-core CPU (the two processes share its cores), "
            "gloo collectives over localhost, `benchmarks/bench_distributed.py`.",
            "",
            "| run | first call | warm | peak memory (RSS) |",
            "|---|---|---|---|",
            *rows,
            "",
            f"- The two-process estimates equal the one-process ones to {diff:.1e} (absolute), their "
            f"standard errors to {sediff:.1e} (relative).",
            f"- The compiled fit program holds {count} all-reduce operations reducing {nbytes:,} bytes in "
            f"all (per Newton step the value, the gradient and the Hessian: (1 + p + p²)·8 = "
            f"{(1 + a.p + a.p * a.p) * 8:,} bytes for p = {a.p}); the rows never move.",
            END,
        ]
    )
    print(block)
    write_block(a.out, START, END, block, "## Several processes (jax.distributed)")


if __name__ == "__main__":
    main()
