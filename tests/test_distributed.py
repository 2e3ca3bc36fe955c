"""Two processes on JAX's multi-controller runtime (``jax.distributed``, gloo on CPU).

Each process holds half of the rows of every dataset as a global array; the fits it gets
must equal one process's fits on the whole data (estimates 1e-9, standard errors 1e-8
relative), on both processes: ``fit_mle`` with and without random effects (groups in both
processes), ``with_cov`` (hc0, cluster), ``summary``, ``bootstrap`` (nonparametric and
parametric, the same draws for the same key) and ``fit_many`` split along its batch axis.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _distributed_models import data, glmm, logit, nb2

import mleppl

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_distributed_worker.py"), str(i), str(port), str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=240)[0].decode(errors="replace"))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()  # SIGKILL: JAX's preemption notifier catches SIGTERM
            pytest.fail("the two-process fits did not finish in 240 s (a collective left waiting?)")
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    return [dict(np.load(out / f"{i}.npz")) for i in range(2)]


@pytest.fixture(scope="module")
def one_process():
    d = data()
    res = mleppl.fit_mle(logit, d["X"], y=d["y"])
    re = mleppl.fit_mle(glmm, d["x1"], d["gid"], d["G"], y=d["yg"], random=["u"])
    many = mleppl.fit_many(nb2, d["Xs"], y=d["Y"])
    boot = mleppl.bootstrap(res, 40, rng_key=1)
    return {
        "b": res.params["b"],
        "se": res.se["b"],
        "loglik": res.loglik,
        "hc0": res.with_cov("hc0").se["b"],
        "cluster": res.with_cov("cluster", groups=d["clusters"]).se["b"],
        "boot": boot.flat,
        "pboot": mleppl.bootstrap(res, 40, kind="parametric", rng_key=2).flat,
        "boot_accel": boot.acceleration,
        "table": res.summary().to_numpy(dtype=float),
        "re_b": re.params["b"],
        "re_s": re.params["s"],
        "re_se": np.concatenate([np.ravel(re.se["b"]), np.ravel(re.se["s"])]),
        "re_loglik": re.loglik,
        "many_b": np.asarray(many.params["b"]),
        "many_se": np.asarray(many.se["b"]),
    }


ESTIMATES = ("b", "loglik", "re_b", "re_s", "re_loglik", "many_b", "boot", "pboot")
SES = ("se", "hc0", "cluster", "table", "re_se", "many_se", "boot_accel")


@pytest.mark.slow  # three processes' first compilations (about 25 s): the slow target, which CI runs
def test_two_processes_give_the_one_process_fit(two_processes, one_process):
    # both processes in one test: under xdist a parametrized pair would launch the pair twice
    for process, got in enumerate(two_processes):
        for k in ESTIMATES:
            np.testing.assert_allclose(
                got[k], one_process[k], rtol=1e-9, atol=1e-9, err_msg=f"{k}, process {process}"
            )
        for k in SES:
            np.testing.assert_allclose(got[k], one_process[k], rtol=1e-8, err_msg=f"{k}, process {process}")
