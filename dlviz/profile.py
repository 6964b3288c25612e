"""Server profiles: ``DLVIZ_PROFILE=classroom`` lowers the costly sizes of every demo for a server shared by a class.

In the classroom profile every *cost* field (steps, epochs, iterations, widths, batch sizes, model sizes, slice
resolution, points) accepts at most ``max(2 x its default, the largest value a preset uses)``; listed choices above
``max(default, presets)`` are dropped. The caps are written into the fields' specs when the demos are registered,
so the widgets, the links and the CLI all honor them, and every preset still runs. The runner keeps a shorter
history (:data:`MAX_HISTORY`). The standard profile changes nothing.
"""

from __future__ import annotations

import dataclasses
import os
import types

from .config import spec_of

PROFILE_ENV = "DLVIZ_PROFILE"
PROFILES = ("standard", "classroom")
COST_FIELDS = frozenset({
    "steps", "epochs", "iterations", "n_points", "n_train", "batch_size", "width", "g_width", "d_width", "hidden",
    "embed_dim", "d_model", "depth", "g_depth", "d_depth", "layers", "out_dim", "length", "grid", "local_crops",
})
AREA_FIELDS = frozenset({"grid"})  # cost grows with the square: capped at max(default, presets), not twice
MAX_HISTORY = {"standard": 4000, "classroom": 1000}  # rows of scalar metrics per run (thinned beyond)
# Rewind checkpoints per run (snapshots with their arrays, thinned like the history) and their memory budget.
MAX_CHECKPOINTS = {"standard": 50, "classroom": 30}
CHECKPOINT_BYTES = {"standard": 96 << 20, "classroom": 24 << 20}


def profile() -> str:
    """The server's profile: ``$DLVIZ_PROFILE`` (standard or classroom), standard when unset or unknown."""
    value = os.environ.get(PROFILE_ENV, "").strip().lower()
    return value if value in PROFILES else "standard"


def classroom() -> bool:
    return profile() == "classroom"


def max_history() -> int:
    return MAX_HISTORY[profile()]


def checkpoint_limits() -> tuple[int, int]:
    """(snapshots, bytes) a run keeps for rewinding and export."""
    return MAX_CHECKPOINTS[profile()], CHECKPOINT_BYTES[profile()]


def cap_config_fields(config_cls: type, preset_configs) -> dict[str, tuple]:
    """Write the classroom caps into ``config_cls``'s field specs; return {field: (old bound, new bound)}."""
    changed = {}
    for f in dataclasses.fields(config_cls):
        if f.name not in COST_FIELDS or isinstance(f.default, bool) or not isinstance(f.default, (int, float)):
            continue
        spec = spec_of(f)
        used = max([f.default] + [getattr(c, f.name) for c in preset_configs if type(c) is config_cls])
        new = spec
        if spec.choices is not None:
            kept = tuple(c for c in spec.choices if c <= used)
            if kept != spec.choices:
                new = dataclasses.replace(spec, choices=kept)
                changed[f.name] = (max(spec.choices), max(kept))
        elif spec.hi is not None:
            hi = min(spec.hi, max((1 if f.name in AREA_FIELDS else 2) * f.default, used))
            if spec.lo is not None:
                hi = max(hi, spec.lo)
            if hi < spec.hi:
                new = dataclasses.replace(spec, hi=type(f.default)(hi))
                changed[f.name] = (spec.hi, new.hi)
        if new is not spec:
            f.metadata = types.MappingProxyType({**f.metadata, "spec": new})
    return changed
