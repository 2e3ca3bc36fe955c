"""``python -m models`` (``make demo``): fit every library model on its bundled data."""

from __future__ import annotations

import sys
import time
import warnings

import pandas as pd

from mleppl import MLEWarning, fit_mle

from . import all_modules


def _relabel(res, labels: dict) -> pd.DataFrame:
    table = res.summary()
    names = []
    for site, labs in labels.items():
        names += [f"{site}[{lab}]" for lab in labs]
    mapping = dict(zip([n for n in table.index if n.split("[")[0] in labels], names))
    return table.rename(index=mapping)


def main() -> int:
    pd.set_option("display.width", 120)
    for mod in all_modules():
        ex = mod.load()
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MLEWarning)
            res = fit_mle(mod.model, *ex.args, **ex.kwargs)
        dt = time.perf_counter() - t0
        print(f"\n=== {ex.name}: {ex.description}")
        print(
            f"    loglik {res.loglik:.4f}  AIC {res.aic:.2f}  BIC {res.bic:.2f}  nobs {res.nobs}  "
            f"{'converged' if res.converged else 'NOT CONVERGED'} in {res.n_steps} steps ({dt:.2f} s)"
        )
        for w in caught:
            print(f"    warning: {w.category.__name__}: {w.message}")
        print(_relabel(res, ex.labels).to_string(float_format=lambda v: f"{v:.6g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
