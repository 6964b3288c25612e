"""The claims harness: every preset states a checkable claim; checks never raise; ``python -m dlviz verify`` runs."""

import json
from dataclasses import replace

import pytest
import torch

from dlviz.cli import main
from dlviz.demos import all_demos, get_demo
from dlviz.demos.base import Claim, Preset
from dlviz.verify import parse_seeds, run_claim

PRESETS = [(name, slug, p) for name, d in all_demos().items() for slug, p in d.presets.items()]


@pytest.mark.parametrize("name,slug,preset", PRESETS, ids=[f"{n}/{s}" for n, s, _ in PRESETS])
def test_every_preset_has_a_claim(name, slug, preset):
    claim = preset.claim
    assert isinstance(claim, Claim), f"{name}/{slug} has no claim"
    assert len(claim.text) > 20 and callable(claim.check)
    assert all(isinstance(k, str) for k in claim.figures)
    assert claim.max_seconds is None or claim.max_seconds > 0
    assert claim.max_steps is None or claim.max_steps > 0


@pytest.mark.parametrize("summary", [{}, {"status": "done"}, {"status": "failed"}, {"status": "paused", "steps": 3},
                                     {"status": "failed", "message": ""},
                                     {"status": "failed", "message": "The loss became NaN at step 3"}])
def test_claims_never_raise_on_missing_figures_or_failed_runs(summary):
    for name, slug, p in PRESETS:
        if p.claim is None:
            continue
        held = p.claim.holds(dict(summary))
        assert held is False or (p.claim.diverges and summary.get("status") == "failed"), f"{name}/{slug}"


def test_failed_runs_hold_only_for_divergence_claims():
    always = Claim("anything", lambda s: True)
    assert always.holds({"status": "done"}) and not always.holds({"status": "failed"})
    diverges = Claim("stops with a message", lambda s: "lr" in s["message"], diverges=True)
    assert diverges.holds({"status": "failed", "message": "lower the lr"})
    assert not diverges.holds({"status": "done", "message": "lower the lr"})
    assert not diverges.holds({"status": "failed"})  # no message: a missing figure, not an exception
    assert not Claim("raises", lambda s: 1 / 0).holds({"status": "done"})


def test_parse_seeds():
    assert parse_seeds("100-104") == [100, 101, 102, 103, 104]
    assert parse_seeds("3,7,9") == [3, 7, 9]
    assert parse_seeds("0-2, 10") == [0, 1, 2, 10]
    for bad in ("", "5-3", "a"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_claim_step_cap_stops_the_run():
    demo = get_demo("kernel-regression")
    preset = demo.presets["learned-width"]
    capped = Preset(preset.title, preset.config, preset.note,
                    Claim("w moved", lambda s: s["steps"] == 10 and s["w"] != 1.0, ("steps", "w"), max_steps=10))
    ok, figures, _ = run_claim(demo, "learned-width", capped, 0, torch.device("cpu"))
    assert ok and figures["steps"] == 10


def test_verify_cli_end_to_end(capsys):
    rc = main(["verify", "--demo", "kernel-regression", "--preset", "learned-width", "--seeds", "0-1", "--json",
               "--device", "cpu"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["seeds"] == [0, 1]
    (row,) = out["results"]
    assert row["demo"] == "kernel-regression" and row["preset"] == "learned-width"
    assert row["passes"] == 2 and row["holds"] and rc == 0
    assert set(row["figures"][0]) >= {"w", "mse_learned"}


def test_a_claim_about_a_share_of_seeds_holds_at_its_share():
    from dlviz.verify import Outcome

    five = [100, 101, 102, 103, 104]
    event = Outcome("d", "p", "c", five, passed=[True, True, True, False, False])
    assert not event.holds  # an event claimed outright needs 4 of 5
    lottery = Outcome("d", "p", "c", five, passed=[True, True, False, False, False], share=0.4)
    assert lottery.holds and not Outcome("d", "p", "c", five, passed=[True] + [False] * 4, share=0.4).holds
