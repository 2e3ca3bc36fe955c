"""Checks that `mkdocs build --strict` does not make: broken tables and network assets.

Run by `make docs` after the build:

    python docs/scripts/check_docs.py [--docs docs] [--site .cache/site]

1. Markdown tables, in the sources (fenced code skipped). A table is a header row
   followed by a delimiter row (``|---|---|``). Each row is split into cells the
   way Python-Markdown's ``tables`` extension splits it (a ``|`` inside a code
   span or escaped as ``\\|`` is not a separator). Python-Markdown silently
   renders a table whose header has a different number of cells than its
   delimiter row as a paragraph, and silently pads or truncates body rows with a
   different count, so both are errors here; so is a table not preceded by a
   blank line or a heading (it becomes part of the paragraph above).
2. The built HTML: a delimiter row left in a paragraph is a table that did not
   become a ``<table>`` (catches tables produced by other means, e.g. in
   docstrings rendered by mkdocstrings); for a page without ``:::`` blocks the
   number of ``<table>`` elements must equal the number of tables in its source.
3. The built HTML loads no script or stylesheet from the network, so the site
   (maths included) works offline.

Exits with status 1 and one line per problem (``file:line: message``) when any
check fails.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

from markdown.extensions.tables import TableProcessor

DELIMITER_ROW = re.compile(r"^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?$")
FENCE = re.compile(r"^(`{3,}|~{3,})")
END_BORDER = TableProcessor.RE_END_BORDER


def split_row(row: str) -> list[str]:
    """Cells of one table row, split exactly as Python-Markdown splits them."""
    row = row.strip()
    if row.startswith("|"):
        row = row[1:]
    row = END_BORDER.sub("", row)
    # TableProcessor._split only reads the class attribute RE_CODE_PIPES.
    return TableProcessor._split(TableProcessor, row)


def source_tables(path: Path) -> tuple[int, list[str]]:
    """Number of tables in a Markdown file, and the problems found in them."""
    lines = path.read_text(encoding="utf-8").split("\n")
    problems: list[str] = []
    n_tables = 0
    fence: str | None = None
    visible: list[str | None] = []  # None for lines inside fenced code
    for line in lines:
        stripped = line.strip()
        m = FENCE.match(stripped)
        if fence is None and m:
            fence = m.group(1)
            visible.append(None)
        elif fence is not None:
            if stripped.startswith(fence) and set(stripped) <= {fence[0]}:
                fence = None
            visible.append(None)
        else:
            visible.append(stripped)

    i = 1
    while i < len(visible):
        delim = visible[i]
        header = visible[i - 1]
        if not (delim and header and "|" in delim and "-" in delim and DELIMITER_ROW.match(delim)):
            i += 1
            continue
        n_tables += 1
        where = f"{path}:{i}"  # the header row, 1-based
        n_cols = len(split_row(delim))
        n_head = len(split_row(header))
        if n_head != n_cols:
            problems.append(
                f"{where}: table header has {n_head} cells but the delimiter row has {n_cols} "
                "(an unescaped | in a header cell? write \\|); the table renders as a paragraph"
            )
        if i >= 2 and visible[i - 2] and not visible[i - 2].startswith(("#", "!!!", "???")):
            problems.append(
                f"{where}: a table must follow a blank line or a heading; it renders as a paragraph"
            )
        j = i + 1
        while j < len(visible) and visible[j] and "|" in visible[j]:
            n_row = len(split_row(visible[j]))
            if n_row != n_cols:
                problems.append(
                    f"{path}:{j + 1}: table row has {n_row} cells, the header {n_cols} "
                    "(an unescaped | in a cell? write \\|)"
                )
            j += 1
        i = j
    return n_tables, problems


PARAGRAPH = re.compile(r"<p\b[^>]*>(.*?)</p>", re.S)
CODE = re.compile(r"<code\b[^>]*>.*?</code>", re.S)
TAG = re.compile(r"<[^>]+>")
LEFTOVER_DELIMITER = re.compile(r"(^|\n)\s*\|?\s*:?-{3,}:?\s*\|", re.M)
REMOTE_ASSET = re.compile(
    r"<script\b[^>]*\bsrc=\"(?:https?:)?//[^\"]*\"|<link\b[^>]*\bhref=\"(?:https?:)?//[^\"]*\"[^>]*>", re.S
)
STYLESHEET_OR_SCRIPT_LINK = re.compile(r"rel=\"(?:stylesheet|preload|modulepreload|preconnect)\"")


def html_problems(page: Path) -> tuple[int, list[str]]:
    """Number of <table> elements in a built page, and the problems found in it."""
    text = page.read_text(encoding="utf-8")
    problems = []
    for m in PARAGRAPH.finditer(text):
        content = html.unescape(TAG.sub("", CODE.sub("", m.group(1))))
        if LEFTOVER_DELIMITER.search(content):
            line = text.count("\n", 0, m.start()) + 1
            first = content.strip().split("\n", 1)[0][:80]
            problems.append(f"{page}:{line}: a table was rendered as a paragraph: {first!r}")
    for m in REMOTE_ASSET.finditer(text):
        tag = m.group(0)
        if tag.startswith("<script") or STYLESHEET_OR_SCRIPT_LINK.search(tag):
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"{page}:{line}: loads an asset from the network: {tag[:120]}")
    return len(re.findall(r"<table\b", text)), problems


def built_page(site: Path, rel: Path) -> Path | None:
    """The HTML page built from a Markdown file (with or without directory URLs)."""
    stem = rel.with_suffix("")
    candidates = [site / stem.with_suffix(".html"), site / stem / "index.html"]
    if stem.name in ("index", "README"):
        candidates.insert(0, site / stem.parent / "index.html")
    return next((c for c in candidates if c.is_file()), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="Markdown sources")
    parser.add_argument("--site", type=Path, default=Path(".cache/site"), help="built site")
    args = parser.parse_args(argv)
    if not args.site.is_dir():
        print(f"check_docs: no built site at {args.site}; run mkdocs build first", file=sys.stderr)
        return 2

    problems: list[str] = []
    n_tables = 0
    for md in sorted(args.docs.rglob("*.md")):
        n_source, found = source_tables(md)
        problems += found
        n_tables += n_source
        page = built_page(args.site, md.relative_to(args.docs))
        if page is None or n_source == 0:
            continue
        if ":::" not in md.read_text(encoding="utf-8"):  # mkdocstrings pages add their own tables
            n_html = len(re.findall(r"<table\b", page.read_text(encoding="utf-8")))
            if n_html != n_source:
                problems.append(f"{md}: {n_source} Markdown tables but {n_html} <table> elements in {page}")
    pages = sorted(args.site.rglob("*.html"))
    for page in pages:
        problems += html_problems(page)[1]

    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check_docs: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_docs: {n_tables} Markdown tables and {len(pages)} pages OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
