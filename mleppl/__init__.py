"""mleppl: exact maximum-likelihood fits of NumPyro models.

The public surface is re-exported here; the implementation lives in layers
that read as the data flow (see ``docs/architecture.md``):
core → adapters → model → solvers → uncertainty → reporting → result → fitting
→ plots, bayes.
"""

from .bayes import compare, fit_nuts, plot_compare
from .core.cache import clear as clear_cache
from .core.cache import enable_persistent_cache as _enable_persistent_cache
from .core.cache import info as cache_info
from .core.records import FitRecord, Issue
from .core.status import Status
from .core.warnings import (
    BoundaryWarning,
    ConvergenceWarning,
    HessianWarning,
    IdentifiabilityWarning,
    LatentVariableWarning,
    MLEWarning,
    MultimodalityWarning,
    PrecisionWarning,
    SeparationWarning,
)
from .fitting.fit import METHODS, fit_mle
from .fitting.many import BatchResult, fit_many
from .model.problem import NegLogLik, negloglik
from .plots import plot_ppc
from .reporting.arviz import loo
from .reporting.hypotheses import DeltaResult, TestResult, compare_fits, delta, lrt, wald_test
from .result import MLEResult
from .uncertainty.bootstrap import BootstrapResult, bootstrap
from .uncertainty.robust import COV_KINDS

__version__ = "0.2.0"
COMPILATION_CACHE_DIR = _enable_persistent_cache()

__all__ = [
    "fit_mle",
    "fit_many",
    "BatchResult",
    "negloglik",
    "NegLogLik",
    "MLEResult",
    "FitRecord",
    "Issue",
    "Status",
    "METHODS",
    "MLEWarning",
    "ConvergenceWarning",
    "HessianWarning",
    "SeparationWarning",
    "IdentifiabilityWarning",
    "BoundaryWarning",
    "MultimodalityWarning",
    "PrecisionWarning",
    "LatentVariableWarning",
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
    "clear_cache",
    "cache_info",
]
