"""Translations: ``_()`` gives a message in the current session's language, from gettext catalogues.

The app speaks English and Simplified Chinese (``dlviz/locale/zh_CN/LC_MESSAGES/dlviz.po``, compiled to the
``.mo`` beside it and committed: the app reads it with the standard library, no Babel at run time).

Whose language? A streamlit session's: the sidebar switch stores it in ``st.session_state["dlviz.lang"]`` and
``_()`` reads it from the script run context of the calling thread (full runs and fragment reruns alike). There is
no global language: two sessions in two languages never see each other's. Outside a script run (the CLI, the
scheduler's training threads, the demos, the tests) it is English, unless ``with language("zh"):`` says otherwise
for the calling context (a ``contextvars`` value: per thread, never shared).

Mark text with ``_("...")`` where it is shown, or ``N_("...")`` where it is defined but translated later (a
registry of names, a module constant). A message with values made outside the UI (a demo's error, a caption
built by an analysis helper) is a :class:`Msg`: English as a ``str``, shown translated with :func:`tr`. Keep the msgid constant: ``_("step {n}").format(n=step)``, never
``_(f"step {step}")`` (the catalogue could never hold it). Strings that cannot be wrapped (a config ``param``'s
help and label, a ``Preset``'s title and note, a ``Claim``'s text, a ``Demo``'s title and summary, a page's
docstring) are found by the extractor in :mod:`dlviz.i18n_extract`; the UI translates them where it shows them.

Update the catalogue after changing texts (needs ``babel``, from requirements-dev.txt)::

    python -m dlviz.i18n update     # extract -> dlviz/locale/dlviz.pot, merge into the .po, compile the .mo
    python -m dlviz.i18n todo       # the msgids without a Chinese msgstr, with where they come from
    python -m dlviz.i18n wrap F.py  # a codemod: wrap the shown strings of a page or figure module in _() (review it)
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import gettext
import sys
from pathlib import Path
from typing import Callable, Iterator

DOMAIN = "dlviz"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
ROOT = LOCALE_DIR.parents[1]
LANGUAGES = {"en": "English", "zh": "简体中文"}  # code (the ``?lang=`` of a link) -> name in that language
LOCALES = {"zh": "zh_CN"}  # code -> catalogue folder
STATE_KEY = "dlviz.lang"  # the session's language in st.session_state (the sidebar switch's key)
DEFAULT = "en"

_override: contextvars.ContextVar[str | None] = contextvars.ContextVar("dlviz_lang", default=None)


@functools.lru_cache(maxsize=None)
def catalogue(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``lang`` (read once per process); English and a missing file: the msgids."""
    if lang not in LOCALES:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, str(LOCALE_DIR), [LOCALES[lang]], fallback=True)


# The UI layer (dlviz.ui.session_language) registers how to read the calling thread's session language; the
# library itself never imports streamlit. None: no UI loaded (the CLI, the demos, the benchmark): English.
_session_hook: Callable[[], str | None] | None = None


def set_session_hook(hook: Callable[[], str | None] | None) -> None:
    """Called by dlviz.ui on import: ``hook()`` gives the calling script thread's session language, or None."""
    global _session_hook
    _session_hook = hook


def _session_language() -> str | None:
    return _session_hook() if _session_hook is not None else None


def current_language() -> str:
    """``with language(...)`` in this context, else the streamlit session's choice, else English."""
    lang = _override.get() or _session_language() or DEFAULT
    return lang if lang in LANGUAGES else DEFAULT


@contextlib.contextmanager
def language(lang: str) -> Iterator[None]:
    """Translate into ``lang`` inside the block, in this thread / context only (the CLI, tests)."""
    token = _override.set(lang)
    try:
        yield
    finally:
        _override.reset(token)


def _(message: str) -> str:
    """``message`` in the current language (itself when the catalogue lacks it, or for English). Usable as a
    widget's ``format_func``: a number or other value comes back as ``str(value)``."""
    if not isinstance(message, str):
        return str(message)
    if not message:  # gettext("") is the catalogue's header
        return message
    return catalogue(current_language()).gettext(message)


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it now (translate with ``_()`` where shown)."""
    return message


class Msg(str):
    """A message made where no language is known (a demo, the runner, the config parser) and shown later: the
    English text (it *is* that ``str``: logs, the CLI, JSON and tests see English), which remembers its msgid and
    values so that :func:`tr` can show it in the reader's language.

    ``Msg(N_("The {what} became NaN at step {step}."), what=Msg(N_("training loss")), step=3)``: mark the
    template with ``N_`` (the extractor finds it); a value that is itself a ``Msg`` (or a list / tuple of them) is
    translated too, other values are formatted as they are. A template that is not a msgid (``"{a}; {b}"``)
    only joins translated parts."""

    template: str
    values: dict

    def __new__(cls, template: str, /, **values):
        self = super().__new__(cls, template.format(**values) if values else template)
        self.template, self.values = template, values
        return self

    def __reduce__(self):  # copy and pickle keep the msgid (str's default would keep only the English)
        return (_restore_msg, (self.template, self.values))


def _restore_msg(template: str, values: dict) -> "Msg":
    return Msg(template, **values)


def tr(message) -> str:
    """``message`` in the current language: a :class:`Msg` from its template and (translated) values, any other
    text through ``_()``; a list or tuple of them, translated item by item and joined by ", "."""
    if isinstance(message, Msg):
        values = {k: (tr(v) if isinstance(v, (Msg, list, tuple)) else v) for k, v in message.values.items()}
        try:
            return _(message.template).format(**values) if values else _(message.template)
        except (KeyError, IndexError, ValueError):  # a broken translation: the English rather than a traceback
            return str(message)
    if isinstance(message, (list, tuple)):
        return ", ".join(tr(m) for m in message)
    return _(message)


# -- maintenance (needs babel) ---------------------------------------------------------------------------
POT = LOCALE_DIR / f"{DOMAIN}.pot"
PO = LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / f"{DOMAIN}.po"
MO = PO.with_suffix(".mo")
MAPPING = ROOT / "babel.cfg"


def extract_catalog():
    """Every message of the code (``babel.cfg`` names the files), as a babel Catalog, read in-process."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    with open(MAPPING, encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f, MAPPING.name)
    catalog = Catalog(project="dlviz", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords={}):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def update() -> None:
    """Extract into the .pot, merge into the .po (new msgids empty, vanished ones dropped), compile the .mo."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po, write_po

    template = extract_catalog()
    POT.parent.mkdir(parents=True, exist_ok=True)
    with open(POT, "wb") as f:
        write_po(f, template, width=120, sort_output=False)
    if PO.exists():
        with open(PO, "rb") as f:
            catalog = read_po(f, locale="zh_CN")
    else:
        PO.parent.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(locale="zh_CN", project="dlviz", charset="utf-8")
    catalog.update(template, no_fuzzy_matching=True)
    catalog.obsolete.clear()
    with open(PO, "wb") as f:
        write_po(f, catalog, width=120, ignore_obsolete=True)
    compile_mo()


def compile_mo() -> None:
    """The .po compiled to the .mo the app reads (fuzzy entries left out)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with open(PO, "rb") as f:
        catalog = read_po(f, locale="zh_CN")
    with open(MO, "wb") as f:
        write_mo(f, catalog, use_fuzzy=False)


def untranslated(catalog=None) -> list:
    """The messages of the code without a Chinese translation: (msgid, [(file, line), ...])."""
    from babel.messages.pofile import read_po

    template = catalog if catalog is not None else extract_catalog()
    with open(PO, "rb") as f:
        po = read_po(f, locale="zh_CN")
    out = []
    for m in template:
        if not m.id:
            continue
        have = po.get(m.id, m.context)
        if have is None or not have.string or have.fuzzy or (isinstance(have.string, tuple) and not all(have.string)):
            out.append((m.id, list(m.locations)))
    return out


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "update"
    if cmd == "update":
        update()
        print(f"wrote {POT.relative_to(ROOT)}, {PO.relative_to(ROOT)}, {MO.relative_to(ROOT)}")
        return 0
    if cmd == "compile":
        compile_mo()
        return 0
    if cmd == "wrap":  # a codemod to start translating a file: review its diff
        from .i18n_extract import add_import, wrap_source

        for name in argv[1:]:
            path = Path(name)
            figures = "figures" in path.parts
            out = wrap_source(path.read_text(encoding="utf-8"), figures=figures)
            out = add_import(out, "from ..i18n import N_, _" if "dlviz" in path.parts else "from dlviz.i18n import N_, _")
            path.write_text(out, encoding="utf-8")
            print("wrapped", name)
        return 0
    if cmd == "todo":
        for msgid, where in untranslated():
            print(f"{', '.join(f'{p}:{n}' for p, n in where[:3])}\n    {msgid!r}")
        return 0
    print("usage: python -m dlviz.i18n [update|compile|todo|wrap FILE...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
