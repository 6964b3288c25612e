"""AppTest of the DINO page: renders, runs, view widgets change, presets switch, checkpoints load or fail clearly."""

import torch
from conftest import open_page

from dlviz.models.vit import VisionTransformer

PAGE = "pages/80_dino.py"


def _no_exception(at):
    assert not at.exception, [e.message for e in at.exception]


TINY = {"steps": "20", "eval_every": "10"}  # from the link, so the page builds one runner, not three


def test_dino_page_defaults_start_and_views():
    at = open_page(PAGE, query=TINY)
    _no_exception(at)
    assert at.selectbox(key="dino.preset").value == "dino"
    at.button(key="dino.play").click().run()
    at.run()
    _no_exception(at)
    runner = at.session_state["dino._runner"]
    assert runner.latest.step > 0 and runner.config.steps == 20
    at.radio(key="dino.who").set_value("student").run()
    at.slider(key="dino.layer").set_value(1).run()
    at.slider(key="dino.keep").set_value(0.3).run()
    at.toggle(key="dino.before").set_value(True).run()
    _no_exception(at)
    assert any("IoU per head at 30%" in c.value for c in at.caption)


def test_presets_switch_without_error():
    at = open_page(PAGE, query=TINY)
    at.selectbox(key="dino.preset").set_value("no-centering").run()
    _no_exception(at)
    assert at.session_state["dino._runner"].config.centering is False
    at.select_slider(key="dino.out_dim").set_value(128).run()
    _no_exception(at)


def test_missing_checkpoint_is_a_message(tmp_path):
    at = open_page(PAGE)
    at.text_input(key="dino.ckpt").input(str(tmp_path / "nope.pth")).run()
    _no_exception(at)
    assert any("No file" in e.value for e in at.error)


def test_checkpoint_in_official_format_shows_photo_attention(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny_dino.pth"
    torch.save(VisionTransformer(64, 16, 3, 128, 2, 2).state_dict(), path)  # official names, tiny size
    at = open_page(PAGE)
    charts_before = len(at.get("plotly_chart"))
    at.text_input(key="dino.ckpt").input(str(path)).run()
    at.select_slider(key="dino.side").set_value(112).run()
    _no_exception(at)
    assert any("2 blocks" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == charts_before + 2  # the two sample photos
