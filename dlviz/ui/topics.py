"""The topics of the app, discovered from ``pages/*.py``: each page's docstring gives its title, icon and summary.

Page docstring format::

    \"\"\"Title of the topic
    icon: 🧠
    One-line summary for the home page.
    \"\"\"

A thumbnail is ``assets/thumbs/<page stem>.png`` when present (made by ``python -m tests.make_thumbs``).
"""

from __future__ import annotations

import functools
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Topic:
    path: Path
    title: str
    icon: str
    summary: str

    @property
    def slug(self) -> str:
        return self.path.stem.split("_", 1)[-1]

    @property
    def thumbnail(self) -> Path | None:
        p = ROOT / "assets" / "thumbs" / f"{self.path.stem}.png"
        return p if p.exists() else None


def _docstring(source: str) -> str:
    """The module docstring, read with the tokenizer: no ``ast.parse``.

    CPython 3.11.7's AST builder keeps its recursion depth in state shared by threads; two sessions parsing at
    once (app.py ran this on every run of every session, beside streamlit's own parsing of page scripts) raised
    ``SystemError: AST constructor recursion depth mismatch``, and that session never trained.
    """
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENCODING):
            continue
        if tok.type != tokenize.STRING:
            return ""
        text = eval(compile(tok.string, "<docstring>", "eval"), {"__builtins__": {}})  # one literal of our own
        return text if isinstance(text, str) else ""
    return ""


@functools.lru_cache(maxsize=4)
def _discover(pages_dir: Path, stamp: tuple) -> tuple[Topic, ...]:
    topics = []
    for path in sorted(pages_dir.glob("*.py")):
        doc = _docstring(path.read_text(encoding="utf-8"))
        doc = "\n".join(ln.strip() for ln in doc.splitlines())
        lines = [ln.strip() for ln in doc.splitlines() if ln.strip()]
        if not lines:
            continue
        icon = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("icon:")), "📄")
        rest = [ln for ln in lines[1:] if not ln.startswith("icon:")]
        topics.append(Topic(path, lines[0], icon, rest[0] if rest else ""))
    return tuple(topics)


def discover(pages_dir: Path = ROOT / "pages") -> list[Topic]:
    """Every page with a docstring, in file-name order (prefix files with 10_, 20_, ... to order them).

    Read once per change of the pages folder (names and modification times), not on every script run."""
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(pages_dir.glob("*.py")))
    return list(_discover(pages_dir, stamp))


# -- cold links ----------------------------------------------------------------------------------------
# Until app.py has run once in a server process, streamlit serves pages/*.py directly (its legacy multipage
# mode): no sidebar, no layout. Pages call require_app() first; app.py then forwards to the page, query kept.
_ENTRY_FLAG, _GOTO = "dlviz.entry_ran", "dlviz.goto"


def mark_app_ran() -> None:
    """Called by app.py on every run."""
    import streamlit as st

    st.session_state[_ENTRY_FLAG] = True


def require_app(page_file: str) -> None:
    """First call of every page: when app.py did not run in this session, go through it to this page."""
    import streamlit as st

    if st.session_state.get(_ENTRY_FLAG):
        return
    st.session_state[_GOTO] = (str(Path(page_file).resolve()), st.query_params.to_dict())
    st.switch_page(str(ROOT / "app.py"))


def pending_redirect() -> tuple[str, dict] | None:
    """The page (and its query) a cold link asked for, once; app.py switches to it."""
    import streamlit as st

    return st.session_state.pop(_GOTO, None)
