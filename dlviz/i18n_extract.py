"""Babel extractor for dlviz (named in ``babel.cfg``): the ``_()`` / ``N_()`` calls, and the texts that cannot be
wrapped because a data structure carries them and the UI translates them where it shows them:

* ``param(default, help, ..., label=...)``: help and label (widgets);
* ``Preset(title, config, note, ...)``: title and note; ``Claim(text, ...)``: text;
* ``Demo(name, title, summary, ...)``: title and summary;
* ``DivergedError("...")`` / ``check_finite(value, step, what, hint)`` with a constant text (else ``Msg(N_(...))``);
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
    "check_finite": ((2, 3), ("what", "hint")),
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


# -- wrapping the strings of a file in _() (a one-off codemod: python -m dlviz.i18n wrap FILE...) ---------------
# Methods of st (and of its containers and columns) whose first argument is shown text; their help=, label=,
# placeholder= and caption= too. Options of radio / selectbox / ... are values the code compares: they are marked
# N_() and shown through format_func=_ instead.
SHOWN = {"title", "header", "subheader", "caption", "markdown", "info", "warning", "error", "success", "toast",
         "expander", "button", "radio", "slider", "select_slider", "selectbox", "toggle", "checkbox", "number_input",
         "text_input", "text_area", "spinner", "metric", "popover", "download_button", "file_uploader",
         "multiselect", "segmented_control", "pills", "page_link", "write", "explain", "queued", "form_submit_button"}
OPTION_WIDGETS = {"radio", "selectbox", "select_slider", "multiselect", "segmented_control", "pills"}
SHOWN_KEYWORDS = {"help", "label", "placeholder", "claim", "title", "x_title", "y_title", "xaxis_title",
                  "yaxis_title", "zaxis_title", "title_text", "legend_title", "legend_title_text", "caption"}
FIGURE_KEYWORDS = {"name", "text"}  # trace names and annotation texts: in figure modules only
WORDS = __import__("re").compile(r"[A-Za-z]{2,}")


def _literal(text: str, indent: int, width: int = 100) -> str:
    """``text`` as a double-quoted Python literal, split into implicitly concatenated pieces of about ``width``."""
    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'

    words, pieces, cur = text.split(" "), [], ""
    for i, w in enumerate(words):
        add = w + (" " if i < len(words) - 1 else "")
        if cur and len(cur) + len(add) > width:
            pieces.append(cur)
            cur = ""
        cur += add
    pieces.append(cur)
    return ("\n" + " " * indent).join(q(p) for p in pieces)


def _placeholder(expr: ast.expr) -> str:
    if isinstance(expr, ast.Name):
        base = expr.id
    elif isinstance(expr, ast.Attribute):
        base = expr.attr
    elif isinstance(expr, ast.Call) and _name(expr.func):
        base = _name(expr.func)
    elif isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Constant) and \
            isinstance(expr.slice.value, str) and expr.slice.value.isidentifier():
        base = expr.slice.value
    else:
        base = "value"
    base = base.strip("_") or "value"
    return base if base.isidentifier() and base not in ("format", "_") else "value"


def _fstring(node: ast.JoinedStr, source: str, indent: int) -> str | None:
    """``f"a {x:.2f} b"`` -> ``_("a {x:.2f} b").format(x=x)``; None when it cannot (nested format specs)."""
    template, args, names = "", {}, {}
    for part in node.values:
        if isinstance(part, ast.Constant):
            template += str(part.value).replace("{", "{{").replace("}", "}}")
            continue
        if not isinstance(part, ast.FormattedValue):
            return None
        code = ast.get_source_segment(source, part.value)
        if code is None:
            return None
        if code not in names:
            name, n = _placeholder(part.value), 2
            while name in args:
                name, n = f"{_placeholder(part.value)}{n}", n + 1
            names[code], args[name] = name, code
        spec = ""
        if part.format_spec is not None:
            if not all(isinstance(v, ast.Constant) for v in part.format_spec.values):
                return None
            spec = ":" + "".join(str(v.value) for v in part.format_spec.values)
        conv = {-1: "", 115: "!s", 114: "!r", 97: "!a"}[part.conversion]
        template += "{" + names[code] + conv + spec + "}"
    call = "_(" + _literal(template, indent + 2) + ")"
    if args:
        joined = ", ".join(f"{k}={v}" for k, v in args.items())
        if len(joined) > 50:
            joined = ("\n" + " " * (indent + 4)).join(f"{k}={v}," for k, v in args.items())[:-1]
            joined = "\n" + " " * (indent + 4) + joined
        call += ".format(" + joined + ")"
    return call


def wrap_source(source: str, figures: bool = False) -> str:
    """``source`` with its shown strings wrapped in ``_()`` (see SHOWN, SHOWN_KEYWORDS; ``figures``: trace names
    and annotation texts too) and ``_`` as a throwaway variable renamed ``_unused``. Review the result: it is a
    start, not a proof (a string compared elsewhere must stay a value, wrapped in N_() and shown through _())."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln.encode("utf-8")))
    data = source.encode("utf-8")

    def span(node: ast.AST) -> tuple[int, int]:
        return starts[node.lineno - 1] + node.col_offset, starts[node.end_lineno - 1] + node.end_col_offset

    edits: list[tuple[int, int, str]] = []

    def wrap(node: ast.expr | None, fn: str = "_") -> None:
        if node is None:
            return
        if isinstance(node, ast.IfExp):
            wrap(node.body, fn), wrap(node.orelse, fn)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            wrap(node.left, fn), wrap(node.right, fn)
        elif isinstance(node, ast.Call) and _name(node.func) == "plain" and node.args:
            wrap(node.args[0], fn)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and WORDS.search(node.value):
            a, b = span(node)
            edits.append((a, b, f"{fn}(" + data[a:b].decode("utf-8") + ")"))
        elif isinstance(node, ast.JoinedStr) and fn == "_":
            text = "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
            if WORDS.search(text):
                new = _fstring(node, source, node.col_offset)
                if new is not None:
                    a, b = span(node)
                    edits.append((a, b, new))

    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store):
            a, b = span(node)
            edits.append((a, b, "_unused"))
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        if name in ("_", "N_", "plain"):
            continue
        if name in SHOWN and node.args:
            wrap(node.args[0])
        if name in OPTION_WIDGETS and len(node.args) > 1 and isinstance(node.args[1], (ast.List, ast.Tuple)):
            for elt in node.args[1].elts:
                wrap(elt, "N_")
            if not any(kw.arg == "format_func" for kw in node.keywords):
                a, b = span(node)
                close = data[:b].rstrip().rfind(b")")
                edits.append((close, close, ", format_func=_"))
        if name == "tabs" and node.args and isinstance(node.args[0], (ast.List, ast.Tuple)):
            for elt in node.args[0].elts:
                wrap(elt)
        if name == "metric_row" and node.args and isinstance(node.args[0], ast.Dict):
            for k in node.args[0].keys:
                wrap(k)
        if name in ("metric_curves", "make_subplots"):
            for arg in list(node.args) + [kw.value for kw in node.keywords if kw.arg in (None, "panels",
                                                                                         "subplot_titles")]:
                if isinstance(arg, (ast.List, ast.Tuple)):
                    for elt in arg.elts:
                        if isinstance(elt, ast.Tuple) and elt.elts:
                            wrap(elt.elts[0])
                        elif name == "make_subplots":
                            wrap(elt)
        for kw in node.keywords:
            if kw.arg in SHOWN_KEYWORDS or (figures and kw.arg in FIGURE_KEYWORDS):
                wrap(kw.value)
    edits.sort()
    kept: list[tuple[int, int, str]] = []
    for e in edits:  # an edit inside another (a string within a wrapped f-string's expression) is left out
        if kept and e[0] < kept[-1][1] and not (e[0] == e[1] == kept[-1][0]):
            continue
        kept.append(e)
    out = data
    for a, b, new in reversed(kept):
        out = out[:a] + new.encode("utf-8") + out[b:]
    return out.decode("utf-8")


def add_import(source: str, line: str) -> str:
    """``line`` (an import) after the last top-level import of ``source``, unless it is there."""
    if line in source:
        return source
    tree = ast.parse(source)
    last = max((n.end_lineno for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))), default=0)
    lines = source.splitlines(keepends=True)
    return "".join(lines[:last] + [line + "\n"] + lines[last:])
