"""What every benchmark script shares: a fresh worker process per tool and the marked block
it writes into ``docs/benchmarks.md``.

Workers run without any persistent compilation cache (first calls include compilation) and,
for a peer whose faster setting on this 2-core machine is single-threaded BLAS, with one
BLAS thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def worker_env(*, one_blas_thread: bool = False, **extra: str) -> dict:
    """The environment of a worker: no compilation cache, the project importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env.update(JAX_ENABLE_COMPILATION_CACHE="false", MLEPPL_COMPILATION_CACHE="0", PYTHONPATH=str(ROOT))
    if one_blas_thread:
        env.update(ONE_BLAS_THREAD)
    env.update(extra)
    return env


def run_json(args: list[str], env: dict, what: str) -> dict:
    """Run ``python *args`` and return the JSON object on its last line of output."""
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_block(out: Path, start: str, end: str, block: str, heading: str) -> None:
    """Replace the text between ``start`` and ``end`` (markers included in ``block``) in
    ``out``, or append ``block`` under ``heading`` where the markers are not there yet."""
    text = out.read_text() if out.exists() else "# Benchmarks\n"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + f"\n\n{heading}\n\n" + block + "\n"
    out.write_text(text)
