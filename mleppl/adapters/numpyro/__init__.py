"""The one adapter between mleppl and NumPyro's internals.

Everything that reads a NumPyro trace, swaps a distribution, or calls an experimental
helper of ``numpyro.infer`` lives in this package, so that a NumPyro upgrade touches
one folder. Its modules, each one job, lower ones never importing higher ones:

``sites``        the typed description (ObservedSite, ModelSites; the site vocabulary)
                 and the readers of one trace site (kinds, plate dims, support bounds)
``masks``        masks and weights of observed sites; the row mask of padded buckets
``kernels``      exact kernels: the Gamma–Poisson log-density NumPyro gets wrong
``observed``     observed data: kind, censoring, name, checks, counts, log-lik terms
``enumeration``  discrete latent sites summed out; their posterior by a tilt
``subsample``    subsampled plates: full plates, chunked log-density, frozen minibatches
``priors``       the prior-free model (flat densities on the free sites' supports)
``classify``     classify_sites / describe_observed: one trace → ModelSites
``trace``        tracing with data, with values, abstractly; the constants probe
``simulate``     replaced / unobserved data, simulation, Predictive, prior draws
``nuts``         NumPyro's NUTS
``svi``          the SVI program (AutoDelta guide, compiled windows)

The names below are the ones the rest of mleppl (and its tests) use.
"""

from .classify import classify_sites, dependent_plated, describe_observed
from .enumeration import enumerated_log_density, latent_posterior
from .kernels import exact_log_density
from .masks import row_masked
from .nuts import run_nuts
from .observed import (
    base_distribution,
    display_name,
    loglik_terms,
    observed_kind,
    observed_nonfinite,
    observed_outside_support,
    observed_shape_problem,
)
from .priors import prior_free
from .simulate import predictive, prior_draws, replace_observed, replicate_observed, simulate_observed
from .sites import (
    ModelSites,
    ObservedSite,
    free_values,
    log_abs_det_jacobian,
    site_kinds,
    site_log_prob,
    support_bounds,
)
from .subsample import (
    FullPlates,
    chunked_log_density,
    frozen_minibatches,
    full_plates,
    subsample_plates,
    subsampled_model,
)
from .svi import svi_program
from .trace import (
    ParamValueError,
    abstract_probe,
    abstract_sites,
    initial_values,
    log_density,
    observed_names,
    support_dependence,
    trace_model,
    trace_with_values,
)

__all__ = [
    # sites
    "ModelSites",
    "ObservedSite",
    "free_values",
    "log_abs_det_jacobian",
    "site_kinds",
    "site_log_prob",
    "support_bounds",
    # masks
    "row_masked",
    # kernels
    "exact_log_density",
    # observed
    "display_name",
    "loglik_terms",
    "observed_kind",
    "base_distribution",
    "observed_nonfinite",
    "observed_outside_support",
    "observed_shape_problem",
    # enumeration
    "enumerated_log_density",
    "latent_posterior",
    # subsample
    "FullPlates",
    "chunked_log_density",
    "frozen_minibatches",
    "full_plates",
    "subsample_plates",
    "subsampled_model",
    # priors
    "prior_free",
    # classify
    "classify_sites",
    "dependent_plated",
    "describe_observed",
    # trace
    "ParamValueError",
    "abstract_probe",
    "support_dependence",
    "abstract_sites",
    "initial_values",
    "log_density",
    "observed_names",
    "trace_model",
    "trace_with_values",
    # simulate
    "predictive",
    "prior_draws",
    "replace_observed",
    "replicate_observed",
    "simulate_observed",
    # nuts
    "run_nuts",
    # svi
    "svi_program",
]
