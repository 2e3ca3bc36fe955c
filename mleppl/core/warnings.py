"""Warning classes: each names one way a maximum-likelihood answer can fail.

Every warning mleppl emits is an :class:`MLEWarning`, so
``warnings.simplefilter("error", mleppl.MLEWarning)`` turns all of them into
errors at once.
"""

from __future__ import annotations

__all__ = [
    "MLEWarning",
    "ConvergenceWarning",
    "HessianWarning",
    "SeparationWarning",
    "IdentifiabilityWarning",
    "BoundaryWarning",
    "MultimodalityWarning",
    "PrecisionWarning",
    "LatentVariableWarning",
]


class MLEWarning(UserWarning):
    """Base class of every warning mleppl emits."""


class ConvergenceWarning(MLEWarning):
    """The optimizer stopped before mleppl's convergence test was met."""


class HessianWarning(MLEWarning):
    """The observed information is singular or not positive definite at the estimate."""


class SeparationWarning(MLEWarning):
    """Estimates run off to infinity while the likelihood approaches its supremum."""


class IdentifiabilityWarning(MLEWarning):
    """Some combination of parameters is not determined by the data."""


class BoundaryWarning(MLEWarning):
    """An estimate sits on (or runs to) the boundary of its support."""


class MultimodalityWarning(MLEWarning):
    """Different starts reached materially different optima (``n_starts > 1``)."""


class PrecisionWarning(MLEWarning):
    """Data arrived in reduced precision (float32): digits were lost before the fit saw them."""


class LatentVariableWarning(MLEWarning):
    """A site looks like a random effect but is maximized over instead of integrated out."""
