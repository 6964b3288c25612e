"""App-wide settings in the sidebar: device (with a switch to force CPU), global seed, lecture mode."""

from __future__ import annotations

import os

import streamlit as st
import torch

from ..data.digits import DATA_DIR_ENV, data_dir

from ..device import available_devices, default_threads, describe_device, pick_device

FORCE_CPU, SEED, LECTURE, THREADS = "dlviz.force_cpu", "dlviz.seed", "dlviz.lecture", "dlviz.threads"

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
    """The seed comes from a shared link (``?seed=3``) the first time the session sees it."""
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
        if THREADS not in st.session_state:
            st.session_state[THREADS] = default_threads()
        st.number_input("CPU threads", min_value=1, max_value=os.cpu_count() or 1, step=1, key=THREADS,
                        help="Threads torch uses on the CPU. The default leaves cores free for the browser "
                             "and the server, which keeps the live charts smooth.")
        # A property of this machine and process (torch's thread pool is global), like the data folder.
        torch.set_num_threads(int(st.session_state[THREADS]))
        _no_post_script_gc()
        st.caption(f"Device: **{describe_device(current_device())}**"
                   + ("" if len(devices) > 1 else " · no GPU found"))
        st.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=SEED,
                        help="Seeds initialization and data order of every demo; part of the page link.")
        with st.expander("Optional datasets"):
            folder = st.text_input("Data folder", value=str(data_dir()), key="dlviz.data_dir",
                                   help="Where MNIST / Fashion-MNIST live (torchvision layout, e.g. "
                                        "<folder>/MNIST/raw/*-ubyte). Digits need nothing.")
            # The folder is a property of this machine, so it is process-wide, like the env variable it sets.
            os.environ[DATA_DIR_ENV] = folder
        st.toggle("Lecture mode", key=LECTURE,
                  help="Larger fonts and figures; the controls start collapsed so the figures fill the projector.")
    if lecture_mode():
        st.markdown(LECTURE_CSS, unsafe_allow_html=True)


def current_device() -> torch.device:
    return pick_device(force_cpu=bool(st.session_state.get(FORCE_CPU, False)))


def global_seed() -> int:
    _init_from_url()
    return int(st.session_state[SEED])


def lecture_mode() -> bool:
    return bool(st.session_state.get(LECTURE, False))
