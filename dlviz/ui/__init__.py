"""The streamlit layer: the only part of dlviz that imports streamlit."""

from . import session_language as _session_language  # registers dlviz.i18n's hook
from .controls import config_form, part_switch
from .live import live_chart, live_run, shared_view
from .settings import current_device, global_seed, lecture_mode, render_sidebar
from .show import explain, metric_row, plain, show

__all__ = ["config_form", "part_switch", "live_chart", "live_run", "current_device", "global_seed", "lecture_mode", "render_sidebar",
           "explain", "metric_row", "plain", "show", "shared_view"]
