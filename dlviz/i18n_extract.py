"""Babel extractor for dlviz (named in ``babel.cfg``): the ``_()`` / ``N_()`` calls, and the texts that cannot be
wrapped because a data structure carries them and the UI translates them where it shows them:

* ``param(default, help, ..., label=...)``: help and label (widgets);
* ``Preset(title, config, note, ...)``: title and note; ``Claim(text, ...)``: text;
* ``Demo(name, title, summary, ...)``: title and summary;
* ``DivergedError("...")`` / ``check_finite(..., hint="...")`` with a constant text;
* a page's module docstring (``pages/*.py``): its title line and its summary line (home cards, navigation).

AST-based: implicit concatenation ("a " "b") is one message, as at run time; f-strings are never messages (the
catalogue cannot hold them; write ``_("... {x} ...").format(x=...)``).
"""

from __future__ import annotations

import ast
from typing import Iterator

# callee name -> (positional indexes, keyword names) of its translatable string arguments
CALLS = {
    "_": ((0,), ()),
    "N_": ((0,), ()),
    "param": ((1,), ("help", "label")),
    "Preset": ((0, 2), ("title", "note")),
    "Claim": ((0,), ("text",)),
    "Demo": ((1, 2), ("title", "summary")),
    "DivergedError": ((0,), ()),
    "check_finite": ((), ("hint",)),
}


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _text(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip():
        return node.value
    return None


def page_docstring_messages(doc: str) -> list[str]:
    """The title and summary lines of a page docstring (the ``icon:`` line is not text)."""
    lines = [ln.strip() for ln in doc.splitlines() if ln.strip()]
    if not lines:
        return []
    rest = [ln for ln in lines[1:] if not ln.startswith("icon:")]
    return [lines[0]] + rest[:1]


def messages(source: str, filename: str = "") -> Iterator[tuple[int, str, str]]:
    """(line, callee, message) for every translatable text of a Python source."""
    tree = ast.parse(source, filename or "<string>")
    norm = filename.replace("\\", "/")
    if "/pages/" in f"/{norm}" or norm.startswith("pages/"):
        doc = ast.get_docstring(tree, clean=True)
        if doc:
            for text in page_docstring_messages(doc):
                yield 1, "docstring", text
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        if name not in CALLS:
            continue
        if name in ("_", "N_") and not isinstance(node.func, ast.Name):
            continue  # obj._(...) is someone else's method
        positions, keywords = CALLS[name]
        found = [node.args[i] for i in positions if i < len(node.args)]
        found += [kw.value for kw in node.keywords if kw.arg in keywords]
        for arg in found:
            text = _text(arg)
            if text is not None:
                yield arg.lineno, name, text


def extract(fileobj, keywords, comment_tags, options) -> Iterator[tuple[int, str, str, list[str]]]:
    """Babel's extractor interface: ``(lineno, funcname, message, comments)`` for each message."""
    source = fileobj.read().decode(options.get("encoding", "utf-8"))
    filename = getattr(fileobj, "name", "") or ""
    for lineno, name, text in messages(source, filename):
        yield lineno, None, text, []
