"""Fit options: one frozen record, validated once at the public boundary.

``fit_mle``, ``fit_many`` and ``bootstrap`` take the same solver options (``method``,
``max_steps``, ``tol``); each used to check them with its own words, and ``fit_many`` not at
all (a misspelt method ran Newton). :func:`fit_options` validates them into a
:class:`FitOptions` that the lower layers receive as it is, and the small checks below are
the only wording of "expected a positive integer" in the package.

Examples
--------
>>> from mleppl.core.options import fit_options
>>> fit_options(method="newton", max_steps=None, tol=1e-10)
FitOptions(method='newton', max_steps=None, tol=1e-10, n_starts=1)
>>> fit_options(method="newtn")
Traceback (most recent call last):
...
ValueError: method: expected one of ('auto', 'newton', 'lbfgs', 'lbfgs-newton', 'svi'), got 'newtn'
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["FitOptions", "fit_options", "positive_int", "positive_float", "METHODS"]

METHODS = ("auto", "newton", "lbfgs", "lbfgs-newton", "svi")


class FitOptions(NamedTuple):
    """Validated solver options (see :func:`fit_options`)."""

    method: str = "auto"
    max_steps: int | None = None
    tol: float = 1e-12
    n_starts: int = 1


def positive_int(name: str, value, *, none_ok: bool = False) -> int | None:
    """``int(value)`` for a positive integer (not a bool), else a ValueError naming ``name``."""
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) and value >= 1):
        raise ValueError(f"{name}: expected a positive integer{' or None' if none_ok else ''}, got {value!r}")
    return int(value)


def positive_float(name: str, value) -> float:
    """``float(value)`` for a positive finite number (not a bool), else a ValueError."""
    if isinstance(value, bool) or not (
        isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value) and value > 0
    ):
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return float(value)


def fit_options(
    *, method: str = "auto", max_steps=None, tol=1e-12, n_starts=1, methods: tuple = METHODS
) -> FitOptions:
    """The options validated, with messages naming the argument ("expected …, got …")."""
    if not isinstance(method, str) or method not in methods:
        raise ValueError(f"method: expected one of {methods}, got {method!r}")
    return FitOptions(
        method,
        positive_int("max_steps", max_steps, none_ok=True),
        positive_float("tol", tol),
        positive_int("n_starts", n_starts),
    )
