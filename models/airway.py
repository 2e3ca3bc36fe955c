"""Per-gene negative-binomial GLMs on the airway RNA-seq experiment (a ``fit_many`` dataset).

Likelihood
----------
For gene g and sample i, with the sample's size factor :math:`s_i` as an offset:

.. math:: y_{gi} \\sim \\mathrm{NB}(\\mu_{gi}, \\alpha_g), \\quad
   \\log\\mu_{gi} = \\log s_i + x_i^\\top\\beta_g, \\quad
   \\operatorname{Var} y_{gi} = \\mu_{gi} + \\alpha_g\\mu_{gi}^2,

one fit per gene, the design :math:`x_i` (intercept, three cell-line contrasts, the
dexamethasone indicator) shared by all genes. This is the gene-wise GLM of DESeq2/edgeR
with the gene's own maximum-likelihood dispersion (no shrinkage across genes): with 8
samples and 5 coefficients a gene has 3 residual degrees of freedom, and for a gene whose
counts are no more variable than Poisson the dispersion MLE is at the boundary α = 0:
``fit_many`` reports those fits with their status instead of a number.

Data
----
Himes et al. (2014), *PLoS ONE* 9(6): e99625 (GEO GSE52778): four primary human airway
smooth-muscle cell lines, each untreated and treated with dexamethasone, 8 RNA-seq runs.
The counts are the Bioconductor ``airway`` package's gene counts as a CSV (see
``data/SOURCES.md``), kept for the 16,090 genes with a mean count of at least 10.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd

from ._common import DATA

__all__ = ["model", "load", "size_factors", "COLUMNS"]

COLUMNS = ["const", "cell[N080611]", "cell[N061011]", "cell[N61311]", "dex[treated]"]


def model(X, offset, y=None):
    """y ~ NB2(exp(offset + X β), α) over the samples; Normal(0, 5) and Exponential(1) priors."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 5.0).expand([X.shape[1]]).to_event(1))
    alpha = numpyro.sample("alpha", dist.Exponential(1.0))
    with numpyro.plate("samples", X.shape[0]):
        numpyro.sample("y", dist.NegativeBinomial2(jnp.exp(offset + X @ beta), 1.0 / alpha), obs=y)


def size_factors(counts: np.ndarray) -> np.ndarray:
    """DESeq2's median-of-ratios size factors of a (genes, samples) count table.

    Notes
    -----
    :math:`s_i = \\operatorname{median}_g \\, y_{gi} / \\big(\\prod_j y_{gj}\\big)^{1/n}` over the
    genes with no zero count (Anders & Huber 2010).
    """
    counts = np.asarray(counts, dtype=np.float64)
    keep = np.all(counts > 0, axis=1)
    log_geo = np.log(counts[keep]).mean(axis=1, keepdims=True)
    return np.exp(np.median(np.log(counts[keep]) - log_geo, axis=0))


def load():
    """``(X, offset, Y, genes, samples)``: the shared design (8, 5), the log size factors (8,),
    the counts (16090, 8) as float64, the Ensembl gene ids and the sample table."""
    counts = pd.read_csv(DATA / "airway_counts.csv.gz", index_col=0)
    samples = pd.read_csv(DATA / "airway_samples.csv")
    counts = counts[samples["run"]]
    Y = counts.to_numpy(np.float64)
    cell = samples["cell"].to_numpy()
    X = np.column_stack(
        [np.ones(len(samples))]
        + [(cell == c).astype(float) for c in ("N080611", "N061011", "N61311")]
        + [(samples["dex"] == "treated").to_numpy(float)]
    )
    return X, np.log(size_factors(Y)), Y, counts.index.to_numpy(), samples
