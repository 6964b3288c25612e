"""The classroom load test's own client, on a served app: two light websocket clients open the same CNN link,
press Start, and watch one shared run (no browser; see dlviz.ui.loadtest)."""

from __future__ import annotations

import pytest

from dlviz.ui.loadtest import run_scenario

pytestmark = pytest.mark.slow


def test_two_clients_share_one_run_and_see_it_train():
    r = run_scenario("same", 2, measure_s=4.0, spread_s=0.5, load_timeout=60, cap_s=90, warm_up=False)
    assert not r["timed_out"], r
    assert r["exceptions"] == 0, r["exception_samples"]
    assert r["loaded"] == 2, r
    assert r["no_update"] == 0 and r["steps_min"] > 0, r  # both clients saw "step N" with N > 0
    assert r["shared_max"] == 2 or r["runs_training"] == 1, r  # "shared: 2 sessions watch this run"
    assert r["refreshes_per_s_median"] > 0, r
