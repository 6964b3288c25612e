"""Registry of live demos, discovered from the modules of this package.

Each module that defines ``DEMOS = [Demo(...), ...]`` is registered; adding a demo needs no edit here.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from ..profile import cap_config_fields, classroom
from .base import Claim, Demo, DivergedError, Preset, Snapshot, check_finite

__all__ = ["Claim", "Demo", "DivergedError", "Preset", "Snapshot", "check_finite", "all_demos", "get_demo"]


@lru_cache(maxsize=None)
def all_demos() -> dict[str, Demo]:
    """Every registered demo by CLI slug, in module order."""
    demos: dict[str, Demo] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for demo in getattr(module, "DEMOS", ()):
            if demo.name in demos:
                raise RuntimeError(f"demo slug {demo.name!r} registered twice")
            demos[demo.name] = demo
    if classroom():  # a server shared by a class: smaller largest sizes (see dlviz.profile)
        for demo in demos.values():
            cap_config_fields(demo.config_cls, [p.config for p in demo.presets.values()])
    return demos


def get_demo(name: str) -> Demo:
    demos = all_demos()
    if name not in demos:
        raise KeyError(f"unknown demo {name!r}; known: {', '.join(demos)}")
    return demos[name]
