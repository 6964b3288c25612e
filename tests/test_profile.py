"""The classroom profile caps the costly sizes everywhere (widgets, links, CLI) and keeps every preset valid."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from dlviz.config import ConfigError, check_value, param, spec_of, with_overrides
from dlviz.profile import cap_config_fields


@dataclasses.dataclass(frozen=True)
class Toy:
    steps: int = param(100, "steps", lo=10, hi=10_000)
    batch_size: int = param(32, "batch", choices=(16, 32, 64, 128))
    grid: int = param(41, "slice resolution", lo=5, hi=81)
    lr: float = param(0.1, "learning rate", lo=0.0, hi=10.0)


def test_caps_follow_the_default_and_the_presets():
    changed = cap_config_fields(Toy, [Toy(steps=300), Toy(batch_size=64)])
    specs = {f.name: spec_of(f) for f in dataclasses.fields(Toy)}
    assert specs["steps"].hi == 300  # a preset uses more than twice the default: it stays runnable
    assert specs["batch_size"].choices == (16, 32, 64)
    assert specs["grid"].hi == 41  # an area: no growth beyond the default
    assert specs["lr"].hi == 10.0  # not a cost: untouched
    assert set(changed) == {"steps", "batch_size", "grid"}
    with pytest.raises(ConfigError, match="must lie in"):
        with_overrides(Toy(), {"steps": "5000"})  # a link asking for more is refused with a message
    assert check_value(dataclasses.fields(Toy)[0], 250) == 250


def test_classroom_profile_from_the_environment_caps_every_demo():
    code = ("from dlviz.demos import all_demos; import dataclasses; from dlviz.config import spec_of, check_value;"
            "d = all_demos();"
            "f = {x.name: x for x in dataclasses.fields(d['landscape'].config_cls)};"
            "print(spec_of(f['steps']).hi, spec_of(f['grid']).hi);"
            "[check_value(x, getattr(p.config, x.name)) for dm in d.values() for p in dm.presets.values()"
            " for x in dataclasses.fields(p.config)]")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "DLVIZ_PROFILE": "classroom"})
    assert out.returncode == 0, out.stderr[-2000:]
    steps_hi, grid_hi = map(int, out.stdout.split())
    assert steps_hi == 1500 and grid_hi == 41  # standard: 5,000 steps and an 81 x 81 slice
