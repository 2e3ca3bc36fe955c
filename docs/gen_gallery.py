"""Build ``docs/gallery.md`` from a demo report folder.

Run ``make demo`` (or ``python -m models --out report``) first, then
``python docs/gen_gallery.py [report]``: the page takes each model's
likelihood from its module docstring, its fit summary from
``report/<model>.csv``, and copies the predictive-check PNGs into
``docs/gallery/``. A model without a CSV in the report folder (e.g. after
``python -m models --only NAME``) keeps its section from the current page.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import NAMES, load_module  # noqa: E402


def section(name: str, report: Path, images: Path) -> str:
    mod = load_module(name)
    ex = mod.load()
    doc = (mod.__doc__ or "").strip()
    title, _, body = doc.partition("\n\n")
    body = body.replace(".. math::", "").replace("\\\\", "\\")
    table = pd.read_csv(report / f"{name}.csv", index_col=0)
    rows = ["| parameter | estimate | se | 95 % CI |", "|---|---|---|---|"]
    for lab, r in table.iterrows():
        rows.append(f"| `{lab}` | {r.estimate:.5g} | {r.se:.3g} | [{r.ci_lower:.4g}, {r.ci_upper:.4g}] |")
    out = [
        f"## {name}",
        "",
        f"*{title.strip()}*",
        "",
        f"**Data:** {ex.description}.",
        "",
        "```text",
        body,
        "```",
        "",
    ]
    out += ["Fit on the bundled data:", "", *rows, ""]
    png = report / f"{name}_ppc.png"
    if png.exists():
        shutil.copy(png, images / png.name)
        out += [f"![predictive check of {name}](gallery/{png.name})", ""]
    return "\n".join(out)


def existing_sections(text: str) -> dict[str, str]:
    """The current page's sections by model name (each from its ``## name`` heading on)."""
    parts = text.split("\n## ")[1:]
    return {p.split("\n", 1)[0].strip(): "## " + p.rstrip("\n") + "\n" for p in parts}


def main(report: str = "report") -> None:
    rep = ROOT / report
    images = ROOT / "docs" / "gallery"
    images.mkdir(exist_ok=True)
    head = [
        "# Model gallery",
        "",
        "Every model in `models/` fitted by maximum likelihood on its bundled real dataset",
        "(`make demo` reproduces these numbers; sources and licences in `models/data/SOURCES.md`).",
        "Each section gives the likelihood as written in the model's docstring, the estimates with",
        "observed-information standard errors and 95 % Wald intervals, and a predictive check",
        "(data simulated at the estimate against the observed data, `mleppl.plot_ppc`).",
        "The independent reference each fit is tested against is in `tests/test_models_reference.py`.",
        "",
    ]
    page = ROOT / "docs" / "gallery.md"
    old = existing_sections(page.read_text()) if page.exists() else {}
    sections = []
    for n in NAMES:
        if (rep / f"{n}.csv").exists():
            sections.append(section(n, rep, images))
        elif n in old:
            sections.append(old[n])
        else:
            raise FileNotFoundError(f"{rep / (n + '.csv')}: run `python -m models --only {n}` first")
    text = "\n".join(head + sections)
    page.write_text(text)
    print(f"wrote docs/gallery.md ({len(NAMES)} models)")


if __name__ == "__main__":
    main(*sys.argv[1:])
