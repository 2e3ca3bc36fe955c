"""Shared helpers for the model library."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parent / "data"


def read_csv(name: str) -> pd.DataFrame:
    """Read a bundled dataset from ``models/data``."""
    return pd.read_csv(DATA / name)


@dataclass(frozen=True)
class Example:
    """A model's bundled data, ready to pass as ``fit_mle(model, *args, **kwargs)``."""

    name: str
    args: tuple
    kwargs: dict
    description: str
    labels: dict = field(default_factory=dict)  # site -> list of human labels
    observed: str = "y"  # keyword carrying the observed data
    init: dict | None = None  # start values, for models whose default start is poor
    reference: str = ""  # the independent check in tests/test_models_reference.py
    fit_options: dict = field(default_factory=dict)  # extra fit_mle options, e.g. {"random": ["u"]}


def design(df: pd.DataFrame, columns: list[str], *, const: bool = True):
    """Design matrix (float64) from data-frame columns, with a leading column of ones."""
    cols = [df[c].to_numpy(float) for c in columns]
    if const:
        cols = [np.ones(len(df))] + cols
    return np.column_stack(cols)
