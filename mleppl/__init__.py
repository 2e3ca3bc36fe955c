"""mleppl: exact maximum-likelihood fits of NumPyro models.

The public surface is re-exported here; implementation lives in private
modules laid out along the data flow (model → likelihood → optimizer →
covariance → result → summaries).
"""

from ._arviz import loo
from ._bayes import compare, fit_nuts, plot_compare
from ._bootstrap import BootstrapResult, bootstrap
from ._fit import METHODS, fit_mle
from ._likelihood import NegLogLik, negloglik
from ._plots import plot_ppc
from ._result import MLEResult
from ._robust import COV_KINDS
from ._tests import DeltaResult, TestResult, compare_fits, delta, lrt, wald_test
from ._warnings import (
    BoundaryWarning,
    ConvergenceWarning,
    HessianWarning,
    IdentifiabilityWarning,
    MLEWarning,
    MultimodalityWarning,
    SeparationWarning,
)

__version__ = "0.1.0"

__all__ = [
    "fit_mle",
    "negloglik",
    "NegLogLik",
    "MLEResult",
    "METHODS",
    "MLEWarning",
    "ConvergenceWarning",
    "HessianWarning",
    "SeparationWarning",
    "IdentifiabilityWarning",
    "BoundaryWarning",
    "MultimodalityWarning",
    "COV_KINDS",
    "bootstrap",
    "BootstrapResult",
    "lrt",
    "wald_test",
    "compare_fits",
    "delta",
    "TestResult",
    "DeltaResult",
    "fit_nuts",
    "compare",
    "plot_compare",
    "plot_ppc",
    "loo",
]
