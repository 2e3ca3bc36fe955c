"""Shared test configuration.

Tolerance tiers used across the suite (each with its reason):

- ``EXACT`` (1e-10): two computations of the same closed form in float64.
- ``REF_EST`` (1e-6 relative) / ``REF_SE`` (1e-5 relative) / ``REF_LL`` (1e-8 relative):
  agreement with independent software (statsmodels, scipy), limited by that software's own
  convergence tolerance, as the core issue specifies.
- Monte-Carlo checks state their own tolerance from the Monte-Carlo standard error.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

EXACT = 1e-10
REF_EST = 1e-6
REF_SE = 1e-5
REF_LL = 1e-8


def assert_rel(actual, expected, rtol, what=""):
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    err = np.max(np.abs(actual - expected) / np.maximum(np.abs(expected), 1e-300))
    assert err <= rtol, (
        f"{what}: max relative error {err:.3g} > {rtol:.0e}\nactual   {actual}\nexpected {expected}"
    )


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(20261122)
