"""Widgets built from a demo's Config: one preset picker and one widget per field, round-tripped via the URL.

A copied link reproduces the run: the preset and every field that differs from it go into ``st.query_params``.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

from ..config import ConfigError, spec_of, to_strings, with_overrides
from ..demos.base import Demo
from ..i18n import _, tr
from .settings import global_seed, lecture_mode
from .show import plain


# Link parameters a page sets itself (which part, view or method is shown; lecture mode, language): a config form
# keeps them.
PAGE_PARAMS = ("lecture", "lang", "part", "view", "section", "method",
               "digit", "proj", "net", "layer", "keep", "before")  # the last ones: see linked_view

def _snap_to_choice(value, choices):
    """A number from a link that is not on a select slider snaps to the nearest allowed value."""
    if value in choices or isinstance(value, str):
        return value
    return min(choices, key=lambda c: abs(c - value))


def _config_from_url(demo: Demo) -> tuple[str, object, list[str]]:
    params = st.query_params.to_dict()
    slug = params.get("preset", "")
    if slug not in demo.presets:  # the preset that equals the defaults, else the first one
        default = demo.default_config()
        slug = next((k for k, p in demo.presets.items() if p.config == default), next(iter(demo.presets), ""))
    config = demo.presets[slug].config if slug else demo.default_config()
    problems = []
    names = {f.name for f in dataclasses.fields(config)}
    for k, v in params.items():
        if k in names and k != "seed":
            try:
                config = with_overrides(config, {k: v})
            except ConfigError as exc:
                problems.append(exc.args[0] if exc.args else str(exc))  # a Msg: shown translated
    return slug, config, problems


def config_form(demo: Demo, key: str, columns: int = 4):
    """Render the preset picker and the widgets of ``demo.config_cls``; return the Config they describe.

    Widget keys are ``f"{key}.{field}"``. The seed comes from the sidebar. The config is remembered across page
    switches (streamlit forgets the values of widgets that were not drawn) and written to the URL.
    """
    ss = st.session_state
    store = f"{key}._config"
    if store not in ss:
        slug, config, problems = _config_from_url(demo)
        ss[f"{key}.preset"] = slug
        ss[store] = config
        for p in problems:
            st.warning(_("Ignored a setting from the link: {problem}").format(problem=plain(tr(p))))
    fields = [f for f in dataclasses.fields(demo.config_cls) if spec_of(f).widget]
    for f in fields:
        if f"{key}.{f.name}" not in ss:
            value = getattr(ss[store], f.name)
            ss[f"{key}.{f.name}"] = _snap_to_choice(value, spec_of(f).choices) if spec_of(f).choices else value

    def apply_preset():
        preset = demo.presets[ss[f"{key}.preset"]].config
        for f in fields:
            ss[f"{key}.{f.name}"] = getattr(preset, f.name)

    with st.expander(_("Controls"), expanded=not lecture_mode()):
        if demo.presets:  # the texts of presets and params are translated where shown (see dlviz.i18n_extract)
            st.selectbox(_("Preset"), list(demo.presets), key=f"{key}.preset", on_change=apply_preset,
                         format_func=lambda s: _(demo.presets[s].title),
                         help=_("A preset reproduces one textbook phenomenon; change any control afterwards."))
        cols = st.columns(columns)
        for i, f in enumerate(fields):
            with cols[i % columns]:
                _widget(f, f"{key}.{f.name}")
    values = {f.name: ss[f"{key}.{f.name}"] for f in fields}
    config = dataclasses.replace(demo.default_config(), **values, seed=global_seed())
    ss[store] = config
    slug = ss.get(f"{key}.preset", "")
    base = demo.presets[slug].config if slug in demo.presets else demo.default_config()
    if slug in demo.presets:
        note, claim = demo.presets[slug].note, demo.presets[slug].claim
        modified = dataclasses.replace(config, seed=base.seed) != base
        text = (_("Modified from the preset.") + " " if modified else "") + _(note)
        if claim is not None:  # the check `python -m dlviz verify` runs on seeds nobody tuned on
            text += " **" + (_("Claim (of the preset, unmodified):") if modified else _("Claim:")) + "** " \
                + _(claim.text)
        st.caption(text)
    keep = {k: v for k, v in st.query_params.to_dict().items() if k in PAGE_PARAMS}  # what the page shows
    st.query_params.from_dict({**keep, **({"preset": slug} if slug else {}), **to_strings(config, base=base),
                               "seed": str(config.seed)})
    return config


def _widget(f: dataclasses.Field, wkey: str):
    spec = spec_of(f)
    label, default = _(spec.label) if spec.label else f.name.replace("_", " "), f.default
    help = _(spec.help)
    if isinstance(default, bool):
        return st.toggle(label, key=wkey, help=help)
    if spec.choices is not None and isinstance(default, str):  # values stay; a choice marked N_() shows translated
        return st.selectbox(label, spec.choices, key=wkey, help=help, format_func=_)
    if spec.choices is not None:
        return st.select_slider(label, options=list(spec.choices), key=wkey, help=help)
    if isinstance(default, (int, float)) and spec.lo is not None and spec.hi is not None:
        step = spec.step if spec.step is not None else (1 if isinstance(default, int) else None)
        cast = type(default)
        return st.slider(label, cast(spec.lo), cast(spec.hi), key=wkey, step=cast(step) if step else None,
                         help=help)
    if isinstance(default, (int, float)):
        return st.number_input(label, key=wkey, help=help)
    return st.text_input(label, key=wkey, help=help)


def part_switch(key: str, parts: dict[str, str]) -> str:
    """A page's parts as one horizontal radio (``parts``: slug -> label marked ``N_()``), kept in the link as
    ``?part=slug`` (see PAGE_PARAMS); a link's part is honoured on the session's first visit. Returns the slug."""
    state, first = st.session_state, next(iter(parts))
    if f"{key}.part" not in state:  # a shared link names its part
        asked = st.query_params.get("part")
        state[f"{key}.part"] = asked if asked in parts else first

    def new_part():
        # Each part's settings live in the link; a different part must not read the previous part's settings.
        st.query_params.clear()

    return st.radio(_("Part"), list(parts), format_func=lambda k: _(parts[k]), horizontal=True, key=f"{key}.part",
                    on_change=new_part, label_visibility="collapsed")


def linked_view(wkey: str, name: str, cast=str, choices=None, lo=None, hi=None, default=None) -> None:
    """Keep a view widget's value (what the page shows, not the run's settings) in the link as ``?name=value``;
    call right before the widget, which then takes no default of its own (``default`` is set here). On the
    session's first visit a link's value is honoured when it casts and lies in ``choices`` or [lo, hi]; anything
    else in the link is ignored. ``name`` must be in PAGE_PARAMS."""
    ss = st.session_state
    if default is not None and wkey not in ss:
        ss[wkey] = default
    if f"{wkey}._linked" not in ss:
        ss[f"{wkey}._linked"] = True
        raw = st.query_params.get(name)
        try:
            value = (raw in ("1", "true", "True")) if cast is bool else cast(raw) if raw is not None else None
        except (TypeError, ValueError):
            value = None
        if value is not None and (choices is None or value in choices) and (lo is None or value >= lo) \
                and (hi is None or value <= hi):
            ss[wkey] = value
    if wkey in ss:
        value = ss[wkey]
        if lo is not None and hi is not None and not isinstance(value, bool) and not lo <= value <= hi:
            value = ss[wkey] = min(max(value, lo), hi)  # a range that shrank (a smaller model after Reset)
        st.query_params[name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
