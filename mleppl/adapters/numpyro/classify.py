"""Site classification: one trace made with the data gives :class:`~.sites.ModelSites`
(free, observed, imputed, deterministic, discrete and random sites; plates), then the
description of each observed site once its data are validated; and the check for random
effects declared as free sites.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to

from ...core import hostview
from ...core.sites import Site
from .enumeration import discrete_support_size
from .masks import observation_mask, observation_weight
from .observed import censoring, display_name, observed_count, observed_kind
from .sites import ModelSites, ObservedSite, _fixed_point, site_dims, site_plate_axes
from .subsample import subsampled_plates


def _is_imputed(name: str, tr: dict) -> bool:
    """True for the ``<base>_unobserved`` site that ``obs_mask`` creates."""
    if not name.endswith("_unobserved"):
        return False
    base = name[: -len("_unobserved")]
    observed = tr.get(base + "_observed")
    det = tr.get(base)
    return (
        observed is not None
        and observed["type"] == "sample"
        and observed["is_observed"]
        and det is not None
        and det["type"] == "deterministic"
    )


def classify_sites(tr: dict, random=(), restricted=()) -> ModelSites:
    """Classify the sites of a trace made with the data.

    Raises
    ------
    ValueError
        For a discrete latent site (it must be marginalized) or a model with
        no observed site.
    """
    free, observed, det, imputed, params, discrete, rand = [], [], [], [], [], [], []
    plates: dict[str, int] = {}
    masked_bases = set()
    for name, site in tr.items():
        for frame in site.get("cond_indep_stack", ()) or ():
            plates.setdefault(frame.name, int(frame.size))
        if site["type"] == "sample":
            fn = site["fn"]
            if site["is_observed"]:
                observed.append(name)
                continue
            shape = tuple(jnp.shape(site["value"]))
            if _is_imputed(name, tr):
                imputed.append((name, _fixed_point(fn.support, shape)))
                masked_bases.add(name[: -len("_unobserved")])
                continue
            if fn.support.is_discrete:
                discrete.append((name, type(fn).__name__))
                continue
            site_ = _free_site(name, "sample", shape, fn.support)
            (rand if name in random else free).append(site_)
        elif site["type"] == "param":
            constraint = site["kwargs"].get("constraint", constraints.real)
            shape = tuple(jnp.shape(site["value"]))
            inside = np.asarray(constraint(jnp.asarray(site["value"])))
            if not (np.all(inside) and np.all(np.isfinite(np.asarray(site["value"])))):
                raise ValueError(
                    f"numpyro.param site '{name}': expected an initial value inside its constraint "
                    f"{constraint}, got {np.asarray(site['value'])}"
                )
            free.append(_free_site(name, "param", shape, constraint))
            params.append((name, site["value"]))
        elif site["type"] == "deterministic":
            det.append((name, tuple(jnp.shape(site["value"]))))
    for name, cls in discrete:
        if not getattr(tr[name]["fn"], "has_enumerate_support", False):
            raise ValueError(
                f"site '{name}' is a discrete latent variable ({cls}) without a finite support: "
                "expected an enumerable distribution (Categorical, Bernoulli, bounded DiscreteUniform, "
                "...) to sum out exactly; a latent count cannot be enumerated (marginalize it in the "
                "model)"
            )
    det = [(n, s) for n, s in det if n not in masked_bases]
    dims = tuple((n, site_dims(tr, n)) for n in [s.name for s in free] + [n for n, _ in det])
    return ModelSites(
        tuple(free),
        tuple(observed),
        (),  # filled by describe_observed once the data are validated
        tuple(det),
        tuple(imputed),
        tuple(plates.items()),
        dims,
        tuple(subsampled_plates(tr)),
        tuple(params),
        tuple(rand),
        tuple((s.name, tuple(site_plate_axes(tr, s.name).items())) for s in rand),
        tuple((n, tuple(tr[n]["fn"].batch_shape), discrete_support_size(tr, n)) for n, _ in discrete),
        max((len(site.get("cond_indep_stack", ()) or ()) for site in tr.values()), default=0),
        tuple(restricted),
    )


def describe_observed(tr: dict, sites: ModelSites) -> ModelSites:
    """``sites`` with the description of each observed site (after the data were validated)."""
    return sites._replace(data=tuple(_describe_observed(tr, name) for name in sites.observed))


def _describe_observed(tr: dict, name: str) -> ObservedSite:
    site = tr[name]
    fn = site["fn"]
    frames = site.get("cond_indep_stack", ()) or ()
    weight = observation_weight(tr, name)
    return ObservedSite(
        name=name,
        label=display_name(tr, name),
        kind=observed_kind(tr, name),
        value=hostview.keep(site["value"]),
        batch_shape=tuple(fn.batch_shape),
        event_dim=int(fn.event_dim),
        plates=tuple((f.name, int(f.dim), int(f.size)) for f in frames),
        dims=site_dims(tr, name),
        mask=observation_mask(tr, name),
        weight=weight,
        count=observed_count(tr, name),
        censoring=censoring(tr, name),
    )


def _free_site(name: str, kind: str, shape: tuple, support) -> Site:
    t = biject_to(support)
    ushape = tuple(t.inverse_shape(shape))
    elementwise = ushape == tuple(shape) and _elementwise(t)
    return Site(name, kind, shape, ushape, support, t, _bounded(support), elementwise)


_ELEMENTWISE = (
    "IdentityTransform",
    "ExpTransform",
    "SigmoidTransform",
    "SoftplusTransform",
    "AffineTransform",
    "PowerTransform",
    "TanhTransform",
)


def _elementwise(t) -> bool:
    """Whether a bijection maps each coordinate on its own (no simplex, Cholesky, ordering)."""
    from numpyro.distributions.transforms import ComposeTransform, IndependentTransform

    if isinstance(t, IndependentTransform):
        return _elementwise(t.base_transform)
    if isinstance(t, ComposeTransform):
        return all(_elementwise(p) for p in t.parts)
    return type(t).__name__ in _ELEMENTWISE


def _bounded(support) -> bool:
    base = support
    while isinstance(base, constraints.independent):
        base = base.base_constraint
    return not (base is constraints.real or isinstance(base, type(constraints.real)))


def dependent_plated(model: Callable, args: tuple, kwargs: dict, tr: dict, free, rng_key) -> list[str]:
    """Free sample sites inside a plate whose distribution depends on other free sites
    (e.g. ``u ~ Normal(0, sigma_u)`` in a plate over groups): random effects, whose joint
    maximization with the parameters is not maximum likelihood. Found by re-tracing with
    the other sites moved and comparing the site's log-density at its value."""
    plated = [s for s in free if s.kind == "sample" and (tr[s.name].get("cond_indep_stack") or ())]
    if not plated or len(free) < 2:
        return []
    out = []
    for cand in plated:
        values = {}
        for s in free:
            v = jnp.asarray(tr[s.name]["value"])
            values[s.name] = v if s.name == cand.name else s.transform(s.transform.inv(v) + 0.3)
        try:
            seeded = handlers.seed(model, rng_key)
            tr2 = handlers.trace(handlers.substitute(seeded, data=values)).get_trace(*args, **kwargs)
            v = jnp.asarray(tr[cand.name]["value"])
            a = np.asarray(tr[cand.name]["fn"].log_prob(v))
            b = np.asarray(tr2[cand.name]["fn"].log_prob(v))
        except Exception:  # noqa: BLE001 - a model that cannot be moved this way is not judged
            continue
        if a.shape == b.shape and not np.allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True):
            out.append(cand.name)
    return out
