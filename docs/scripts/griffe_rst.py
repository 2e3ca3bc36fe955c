"""Griffe extension for the API reference: reST markup in numpydoc docstrings → Markdown.

mleppl's docstrings are numpydoc, written for Sphinx: inline maths as
``:math:`...```, display maths as ``.. math::`` blocks, and cross-reference roles
such as ``:func:`fit_mle```. mkdocstrings renders docstrings as Markdown, so this
extension rewrites those three constructs before the docstring is parsed:

* ``:math:`x``` → ``\\(x\\)`` (inline maths for ``pymdownx.arithmatex``);
* ``.. math:: x`` (with indented continuation lines, or the formula on the
  following indented lines) → a ``$$ ... $$`` display block;
* ``:func:`name```, ``:class:``, ``:meth:``, ``:attr:``, ``:data:``, ``:mod:``,
  ``:obj:``, ``:exc:`` → a code span (a leading ``~`` keeps only the last name),
  wrapped in an optional cross-reference for mkdocs-autorefs: a link when the
  object is rendered in the reference, plain code when it is not (no warning).
  Short names of the public API (``fit_mle``, ``MLEResult.conf_int``) resolve to
  ``mleppl.<name>``.

Loaded by mkdocs.yml (``plugins.mkdocstrings.handlers.python.options.extensions``);
the package sources are not changed.
"""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path
from typing import Any

import griffe


def _public_names() -> frozenset[str]:
    """``mleppl.__all__``, read from the source (no import)."""
    init = Path(__file__).resolve().parents[2] / "mleppl" / "__init__.py"
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return frozenset(ast.literal_eval(node.value))
    return frozenset()


_PUBLIC = _public_names()

_INLINE_MATH = re.compile(r":math:`([^`]+)`")
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|data|mod|obj|exc|const):`~?([^`]+)`")
_MATH_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<rest>.*)$")


def _role(match: re.Match[str]) -> str:
    target = match.group(1).strip()
    shown = target.rsplit(".", 1)[-1] if "`~" in match.group(0) else target
    if target.split(".", 1)[0] in _PUBLIC:
        target = "mleppl." + target
    if not target.startswith("mleppl."):
        return f"`{shown}`"
    return f'<autoref identifier="{html.escape(target)}" optional><code>{html.escape(shown)}</code></autoref>'


def _indent_width(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _display_math(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _MATH_DIRECTIVE.match(lines[i])
        if m is None:
            out.append(lines[i])
            i += 1
            continue
        indent = m.group("indent")
        base = len(indent)
        body = [m.group("rest").strip()] if m.group("rest").strip() else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent_width(lines[i]) > base):
            body.append(lines[i].strip())
            i += 1
        # Blank lines that ended the block belong to the text after it.
        while body and not body[-1]:
            body.pop()
            i -= 1
        body = [b for b in body if b]
        if out and out[-1].strip():
            out.append("")
        out.append(indent + "$$")
        out.extend(indent + b for b in body)
        out.append(indent + "$$")
        if i < len(lines) and lines[i].strip():
            out.append("")
    return "\n".join(out)


def rst_to_markdown(text: str) -> str:
    """Rewrite the reST maths and roles of one docstring as Markdown."""
    text = _display_math(text)
    text = _INLINE_MATH.sub(lambda m: r"\(" + m.group(1) + r"\)", text)
    return _ROLE.sub(_role, text)


class RstMath(griffe.Extension):
    """Rewrite every docstring once, when griffe creates the object."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        parent = obj.parent
        if obj.is_attribute and parent is not None and parent.docstring is not None:
            # Inspected enum members inherit their class's docstring: do not repeat it.
            if obj.docstring.value.strip() in (
                parent.docstring.value.strip(),
                rst_to_markdown(parent.docstring.value).strip(),
            ):
                obj.docstring = None
                return
        obj.docstring.value = rst_to_markdown(obj.docstring.value)
