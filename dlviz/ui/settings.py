"""App-wide settings in the sidebar: language, device (with a switch to force CPU), global seed, lecture mode."""

from __future__ import annotations

import contextlib
import contextvars
import os

import streamlit as st
import torch

from ..data.digits import DATA_DIR_ENV, server_data_dir

from ..device import available_devices, describe_device, pick_device, server_threads
from ..i18n import LANGUAGES, STATE_KEY as LANG, _
from ..profile import classroom
from ..scheduler import scheduler

FORCE_CPU, SEED, LECTURE = "dlviz.force_cpu", "dlviz.seed", "dlviz.lecture"
LANG_SWITCH = "dlviz.lang_switch"  # the widget; the language itself is in LANG, plain state that no run clears

# Streamlit fades the elements of a running script (or fragment) run as stale; a live chart redrawn several
# times a second then flickers grey. Stale charts keep full opacity: the next redraw replaces them in place.
# Measured in Chromium on the GAN page (150 samples over 7.5 s while training): 4 faded samples before, see README.
STEADY_CSS = """
<style>
[data-testid="stElementContainer"][data-stale="true"], [data-stale="true"] { opacity: 1 !important; transition: none !important; }
/* The home cards' page names wrap instead of ending in "…" (long titles, Chinese, lecture mode). */
[data-testid="stPageLink-NavLink"] * { white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; line-height: 1.35 !important; }
[data-testid="stPageLink-NavLink"] { height: auto !important; }
/* The sidebar's page names wrap too: "GAN: a generator against a discr…" named no page. */
[data-testid="stSidebarNavLink"] { height: auto !important; min-height: 2rem; padding-top: 0.2rem; padding-bottom: 0.2rem; }
[data-testid="stSidebarNavLink"] .stMarkdownEllipsis, [data-testid="stSidebarNavLink"] p {
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important; line-height: 1.3 !important; }
/* dlviz.ui.show draws a chart in slots stacked in one cell: the newest on top covers the previous drawings once
   drawn, and lets them show through until then (no empty frame between redraws). */
[class*="st-key-dlviz_buf_"] { display: grid !important; grid-template-columns: minmax(0, 1fr); gap: 0 !important;
  justify-items: stretch; justify-content: stretch; width: 100%; }
[class*="st-key-dlviz_buf_"] > * { grid-area: 1 / 1; min-width: 0; width: 100% !important; }
</style>
"""

# Lecture mode: larger text for the projector. The key hints drawn inside buttons (Space, N, Home) are hidden there:
# at 1.3rem they cut the labels of the live buttons at 1280 px ("▶ 开…"); each button's tooltip names its key.
LECTURE_CSS = """
<style>
html, body, [data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.3rem; }
h2 { font-size: 2.0rem !important; } h3 { font-size: 1.6rem !important; }
/* The first screen of a 1280x720 projector holds the title, the buttons, the status line, the metric row and the
   main figure whole. The 1.3rem root font makes every rem-based gap and margin 30% larger too; these take that back
   in the main area (measured on the CNN page: the curves ended at y = 806 before, 672 after). */
[data-testid="stMain"] h1 { font-size: 2.1rem !important; padding: 0 0 0.25rem 0 !important; line-height: 1.3 !important; }
[data-testid="stHeader"] { background: transparent; }  /* the title starts under the toolbar row: not hidden by it */
[data-testid="stMain"] [data-testid="stVerticalBlock"] { gap: 0.55rem; }
[data-testid="stMain"] [data-testid="stMetricValue"] { font-size: 2.0rem; line-height: 1.15; }
[data-testid="stMain"] [data-testid="stMetric"] label { margin-bottom: 0; min-height: 0; }
[data-testid="stMain"] [data-testid="stMetricLabel"] p { font-size: 1.05rem !important; }  /* whole labels */
[data-testid="stMain"] [data-testid="stMetricDelta"] { font-size: 0.9rem; }
[data-testid="stMain"] [data-testid="stRadio"] label p { font-size: 1rem !important; }
[data-testid="stMain"] [data-testid="stCaptionContainer"], [data-testid="stMain"] [data-testid="stCaptionContainer"] p {
  margin: 0; font-size: 0.8rem; }
.katex { font-size: 1.5em; }
[data-testid="stMainBlockContainer"] { padding-top: 1.5rem; max-width: 100%; }
.stButton button kbd { display: none; }
/* With the sidebar open (to switch the language, say) the main area is about 770 px wide: the live buttons' labels
   were cut ("▶ Res…", "⏸ Pa…", "↺ Re…"); there they keep the normal size. */
body:has([data-testid="stSidebar"][data-collapsed="false"]) [data-testid="stMain"] .stButton button p {
  font-size: 16px !important; }
/* The lecturer's side, not the room's: the sidebar's page names and the labels of the controls keep the normal size
   (px: rem is the enlarged root size here): every page name shows whole in two or three lines, and a row of seven
   toggles ("Momentum", "AdaGrad", "AdamW") is not cut (measured at 1280x720 with the sidebar closed). */
[data-testid="stSidebarNav"] span, [data-testid="stSidebarNav"] p { font-size: 16px !important; }
[data-testid="stExpanderDetails"] [data-testid="stWidgetLabel"] p,
[data-testid="stExpanderDetails"] [data-baseweb="checkbox"] p { font-size: 16px !important; }
/* A switch's "?" took the room of its name ("Mom…", "Ada…", "Ada…"): a switch says what it includes by its name,
   at 14 px so that "Momentum" fits a seventh of the page beside its switch. */
[data-testid="stExpanderDetails"] [data-testid="stCheckbox"] [data-testid="stTooltipIcon"] { display: none; }
[data-testid="stExpanderDetails"] [data-testid="stCheckbox"] p { font-size: 14px !important; }
</style>
"""


def browser_language() -> str:
    """The language of the browser (``st.context.locale``, e.g. "zh-CN"): Chinese for zh*, else English."""
    try:
        locale = str(st.context.locale or "")
    except Exception:  # no browser (bare runs, AppTest)
        locale = ""
    return "zh" if locale.lower().startswith("zh") else "en"


def _init_from_url(query: dict | None = None) -> None:
    """The seed (``?seed=3``), lecture mode (``?lecture=1``) and language (``?lang=zh``, else the browser's)
    come from the link (``query``, default the address bar's) the first time the session sees them: a refresh
    with the link keeps the projector settings."""
    query = query if query is not None else st.query_params.to_dict()
    if LANG not in st.session_state:
        lang = query.get("lang", "")
        st.session_state[LANG] = lang if lang in LANGUAGES else browser_language()
    if LECTURE not in st.session_state:
        st.session_state[LECTURE] = query.get("lecture", "") in ("1", "true", "on")
    if SEED not in st.session_state:
        try:
            st.session_state[SEED] = int(query.get("seed", 0))
        except ValueError:
            st.session_state[SEED] = 0


def init_from_link(query: dict | None = None) -> None:
    """app.py, before anything that shows text: the settings of the link (``query``: the one a cold link to a
    page carried, else the address bar's), so the navigation's titles are already in the link's language."""
    _init_from_url(query)


def _no_post_script_gc() -> None:
    """The setting of ``.streamlit/config.toml``, also when the app is started from another folder: no full
    ``gc.collect(2)`` after every script run (150 ms per live refresh with torch and plotly loaded, measured).
    Streamlit reads the option at the end of each run; if a future version drops it, nothing breaks.
    Likewise no magic: page scripts compiled later are not parsed into AST objects (see config.toml)."""
    try:
        from streamlit import config

        for option in ("runner.postScriptGC", "runner.magicEnabled"):
            if config.get_option(option):
                config.set_option(option, False)
    except Exception:  # an internal API: the config file still applies
        pass


def _switch_language() -> None:
    choice = st.session_state.get(LANG_SWITCH)
    if choice in LANGUAGES:
        if choice != st.session_state.get(LANG):
            _relabel_choices(choice)
        st.session_state[LANG] = choice


def tolerate_stale_labels() -> None:
    """Let a selectbox, radio or select slider read a choice's label in any language of the app.

    The browser names the choice by its label. Right after a language switch, a rerun already on its way (a live
    chart's timer, a click) still carries the old language's label, and Streamlit found no such option: a
    selectbox or radio returned the label itself (a preset's callback raised KeyError, seen in a browser tour)
    and a select slider fell back to its default. Here a label not found is looked up in every language and read
    as its option. Installed once; where Streamlit's internals differ, nothing changes."""
    try:
        from streamlit.elements.widgets.radio import RadioSerde
        from streamlit.elements.widgets.select_slider import SelectSliderSerde
        from streamlit.elements.widgets.selectbox import SelectboxSerde
    except ImportError:
        return
    for cls, table, many in ((SelectboxSerde, "formatted_option_to_option_index", False),
                             (RadioSerde, "formatted_option_to_option_index", False),
                             (SelectSliderSerde, "formatted_option_to_index", True)):
        original = getattr(cls, "deserialize", None)
        if original is None or getattr(original, "dlviz_any_language", False):
            continue

        def deserialize(self, ui_value, _original=original, _table=table, _many=many):
            labels = getattr(self, _table, None)
            if isinstance(labels, dict) and ui_value is not None:
                ui_value = [_label_now(self, v, labels) for v in ui_value] if _many else \
                    _label_now(self, ui_value, labels)
            return _original(self, ui_value)

        deserialize.dlviz_any_language = True
        cls.deserialize = deserialize


def _label_now(serde, label, labels: dict):
    """``label`` as this widget labels the same option now (``labels``: label -> index), from any language."""
    if not isinstance(label, str) or label in labels:
        return label
    try:
        for lang in LANGUAGES:
            then = _labels_in(serde.format_func, serde.options, lang)
            if label in then:
                index = then.index(label)
                return next((k for k, i in labels.items() if i == index), label)
    except Exception:  # noqa: BLE001  (labels that cannot be recomputed: as Streamlit would have it)
        pass
    return label


def _labels_in(format_func, options, lang: str | None = None) -> list[str]:
    """A choice widget's labels, in ``lang`` (None: the current language)."""
    from ..i18n import language

    with language(lang) if lang else contextlib.nullcontext():
        return [str(format_func(o)) for o in options]


tolerate_stale_labels()


def _relabel_choices(lang: str) -> None:
    """Before a language switch: a selectbox, radio or select slider is identified in the browser by its choice's
    label, and the browser keeps the old language's label until the server sets the widget. Without this, the
    next rerun after the switch found no such label: a selectbox or radio returned the label itself (a preset's
    on_change raised KeyError on the CLIP page) and a select slider fell back to its default. So every keyed
    choice widget whose labels differ in ``lang`` is set to its own value: this run sends the new labels.
    Streamlit's internals are read with care; where they differ, nothing is done (as before). The labels now
    come right from the wrapped deserializers too (``tolerate_stale_labels``); this makes the browser show them."""
    ss = st.session_state
    try:
        from streamlit.runtime.state.session_state_proxy import get_session_state

        inner = get_session_state()._state  # the SessionState behind this session's lock
        metas = dict(inner._new_widget_state.widget_metadata)
        keys = dict(inner._key_id_mapper.id_key_mapping)
    except (ImportError, AttributeError):
        return
    for wid, meta in metas.items():
        key, serde = keys.get(wid), getattr(meta.deserializer, "__self__", None)
        options, label = getattr(serde, "options", None), getattr(serde, "format_func", None)
        if key is None or key == LANG_SWITCH or options is None or label is None or key not in ss:
            continue
        try:
            if _labels_in(label, options) != _labels_in(label, options, lang):
                ss[key] = ss[key]
        except Exception:  # noqa: BLE001, S112  (a widget whose labels cannot be recomputed: left as it was)
            continue


def render_sidebar() -> None:
    """Draw the shared sidebar; call once per run from app.py."""
    _init_from_url()
    with st.sidebar:
        # The switch's callback runs before the script, so the whole page, this sidebar included, redraws in the
        # new language at once; a run in progress goes on untouched. The language is kept apart from the widget:
        # streamlit forgets a widget's value in a run that does not draw it (AppTest page runs, a page of its own).
        st.session_state[LANG_SWITCH] = st.session_state[LANG]
        st.segmented_control("Language · 语言", list(LANGUAGES), format_func=LANGUAGES.get, key=LANG_SWITCH,
                             selection_mode="single", required=True, on_change=_switch_language,
                             help="English / 简体中文: the whole app; part of the page link (?lang=zh).")
        st.markdown("### " + _("Settings"))
        devices = available_devices()
        st.toggle(_("Force CPU"), key=FORCE_CPU, disabled=devices == ["cpu"],
                  help=_("Train on the CPU even when a GPU is present (to compare speed, or free the GPU)."))
        torch.set_num_threads(server_threads())  # this script thread's on-page computations
        _no_post_script_gc()
        sched = scheduler()
        running = sched.running()
        st.caption(_("Device: **{device}**").format(device=describe_device(current_device()))
                   + ("" if len(devices) > 1 else _(" · no GPU found"))
                   + " · " + (_("{n} training worker") if sched.workers == 1 else _("{n} training workers")
                              ).format(n=sched.workers)
                   + ", " + (_("{n} run training on this server") if running == 1
                             else _("{n} runs training on this server")).format(n=running)
                   + (_(" · classroom profile: largest sizes capped") if classroom() else ""),
                   help=_("Server settings, the same for every session: torch threads from DLVIZ_THREADS, "
                          "training workers from DLVIZ_WORKERS, the data folder from DLVIZ_DATA, the profile from "
                          "DLVIZ_PROFILE (see the README)."))
        st.number_input(_("Seed"), min_value=0, max_value=2**31 - 1, step=1, key=SEED,
                        help=_("Seeds initialization and data order of every demo; part of the page link."))
        with st.expander(_("Optional datasets")):
            st.caption(_("MNIST and Fashion-MNIST are read from the server's data folder, `{folder}` (torchvision "
                         "layout: <folder>/MNIST/raw/*-ubyte), set by {env} when the app starts. Digits need "
                         "nothing.").format(folder=server_data_dir(), env=DATA_DIR_ENV))
        st.toggle(_("Lecture mode"), key=LECTURE,
                  help=_("Larger fonts and figures; the controls start collapsed so the figures fill the "
                         "projector."))
    # One element either way: a second one for lecture mode moved every element of the page down by one, and
    # Streamlit remounted them all (the live charts went blank for half a second when lecture mode was toggled).
    st.markdown(STEADY_CSS + (LECTURE_CSS if lecture_mode() else ""), unsafe_allow_html=True)
    if lecture_mode():
        st.query_params["lecture"] = "1"
    elif "lecture" in st.query_params:
        del st.query_params["lecture"]
    # The link names the language when it is not the one the browser would pick by itself.
    lang = st.session_state[LANG]
    if lang == "en" and browser_language() == "en":
        if "lang" in st.query_params:
            del st.query_params["lang"]
    elif st.query_params.get("lang") != lang:
        st.query_params["lang"] = lang


def current_device() -> torch.device:
    return pick_device(force_cpu=bool(st.session_state.get(FORCE_CPU, False)))


def global_seed() -> int:
    _init_from_url()
    return int(st.session_state[SEED])


_LECTURE_AS: contextvars.ContextVar[bool | None] = contextvars.ContextVar("dlviz_lecture_as", default=None)


def lecture_mode() -> bool:
    """The session's lecture mode, or the one ``lecture_as`` set in this context (the live feed draws a chart for a
    session outside its script run)."""
    forced = _LECTURE_AS.get()
    return bool(st.session_state.get(LECTURE, False)) if forced is None else forced


@contextlib.contextmanager
def lecture_as(flag: bool):
    token = _LECTURE_AS.set(bool(flag))
    try:
        yield
    finally:
        _LECTURE_AS.reset(token)
