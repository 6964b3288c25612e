"""App-wide settings in the sidebar: device (with a switch to force CPU), global seed, lecture mode."""

from __future__ import annotations

import os

import streamlit as st
import torch

from ..data.digits import DATA_DIR_ENV, server_data_dir

from ..device import available_devices, describe_device, pick_device, server_threads
from ..profile import classroom
from ..scheduler import scheduler

FORCE_CPU, SEED, LECTURE = "dlviz.force_cpu", "dlviz.seed", "dlviz.lecture"

# Streamlit fades the elements of a running script (or fragment) run as stale; a live chart redrawn several
# times a second then flickers grey. Stale charts keep full opacity: the next redraw replaces them in place.
# Measured in Chromium on the GAN page (150 samples over 7.5 s while training): 4 faded samples before, see README.
STEADY_CSS = """
<style>
[data-testid="stElementContainer"][data-stale="true"], [data-stale="true"] { opacity: 1 !important; transition: none !important; }
</style>
"""

LECTURE_CSS = """
<style>
html, body, [data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.3rem; }
h1 { font-size: 2.6rem !important; } h2 { font-size: 2.0rem !important; } h3 { font-size: 1.6rem !important; }
[data-testid="stMetricValue"] { font-size: 2.4rem; }
.katex { font-size: 1.5em; }
[data-testid="stMainBlockContainer"] { padding-top: 1.5rem; max-width: 100%; }
</style>
"""


def _init_from_url() -> None:
    """The seed (``?seed=3``) and lecture mode (``?lecture=1``) come from the link the first time the session
    sees them: a refresh with the link keeps the projector settings."""
    if LECTURE not in st.session_state:
        st.session_state[LECTURE] = st.query_params.get("lecture", "") in ("1", "true", "on")
    if SEED not in st.session_state:
        try:
            st.session_state[SEED] = int(st.query_params.get("seed", 0))
        except ValueError:
            st.session_state[SEED] = 0


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


def render_sidebar() -> None:
    """Draw the shared sidebar; call once per run from app.py."""
    _init_from_url()
    with st.sidebar:
        st.markdown("### Settings")
        devices = available_devices()
        st.toggle("Force CPU", key=FORCE_CPU, disabled=devices == ["cpu"],
                  help="Train on the CPU even when a GPU is present (to compare speed, or free the GPU).")
        torch.set_num_threads(server_threads())  # this script thread's on-page computations
        _no_post_script_gc()
        sched = scheduler()
        st.caption(f"Device: **{describe_device(current_device())}**"
                   + ("" if len(devices) > 1 else " · no GPU found")
                   + f" · {sched.workers} training worker{'s' if sched.workers > 1 else ''}, "
                     f"{sched.running()} run{'s' if sched.running() != 1 else ''} training on this server"
                   + (" · classroom profile: largest sizes capped" if classroom() else ""),
                   help="Server settings, the same for every session: torch threads from DLVIZ_THREADS, training "
                        "workers from DLVIZ_WORKERS, the data folder from DLVIZ_DATA, the profile from DLVIZ_PROFILE "
                        "(see the README).")
        st.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=SEED,
                        help="Seeds initialization and data order of every demo; part of the page link.")
        with st.expander("Optional datasets"):
            st.caption(f"MNIST and Fashion-MNIST are read from the server's data folder, `{server_data_dir()}` "
                       f"(torchvision layout: <folder>/MNIST/raw/*-ubyte), set by {DATA_DIR_ENV} when the app "
                       "starts. Digits need nothing.")
        st.toggle("Lecture mode", key=LECTURE,
                  help="Larger fonts and figures; the controls start collapsed so the figures fill the projector.")
    st.markdown(STEADY_CSS, unsafe_allow_html=True)
    if lecture_mode():
        st.markdown(LECTURE_CSS, unsafe_allow_html=True)
        st.query_params["lecture"] = "1"
    elif "lecture" in st.query_params:
        del st.query_params["lecture"]


def current_device() -> torch.device:
    return pick_device(force_cpu=bool(st.session_state.get(FORCE_CPU, False)))


def global_seed() -> int:
    _init_from_url()
    return int(st.session_state[SEED])


def lecture_mode() -> bool:
    return bool(st.session_state.get(LECTURE, False))
