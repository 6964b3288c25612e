"""AppTest of the DINO page: renders, runs, view widgets change, presets switch, checkpoints load or fail clearly."""

import torch
from conftest import open_page, refresh_until_trained

from dlviz.models.vit import VisionTransformer
from dlviz.ui.show import chart_key

PAGE = "pages/80_dino.py"


def _no_exception(at):
    assert not at.exception, [e.message for e in at.exception]


TINY = {"steps": "20", "eval_every": "10"}  # from the link, so the page builds one runner, not three


def test_dino_page_defaults_start_and_views():
    at = open_page(PAGE, query=TINY)
    _no_exception(at)
    assert at.selectbox(key="dino.preset").value == "dino"
    at.button(key="dino.play").click().run()
    refresh_until_trained(at, "dino")
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


def test_empty_weights_folder_says_where_to_put_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("DLVIZ_WEIGHTS", str(tmp_path))
    at = open_page(PAGE)
    _no_exception(at)
    assert any("No checkpoint yet" in i.value for i in at.info)
    assert any(str(tmp_path.resolve()) in c.value for c in at.code)
    assert not [t for t in at.text_input if t.key == "dino.ckpt"]  # no box that takes a server path


def test_bad_checkpoint_in_the_folder_is_a_message(tmp_path, monkeypatch):
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    (tmp_path / "notes.txt").write_text("not listed")
    monkeypatch.setenv("DLVIZ_WEIGHTS", str(tmp_path))
    at = open_page(PAGE)
    assert at.selectbox(key="dino.ckpt").options == ["junk.pth"]
    at.selectbox(key="dino.ckpt").set_value("junk.pth").run()
    _no_exception(at)
    assert any("Could not read" in e.value for e in at.error)


def test_checkpoint_in_official_format_shows_photo_attention(tmp_path, monkeypatch):
    torch.manual_seed(0)
    path = tmp_path / "tiny_dino.pth"
    torch.save(VisionTransformer(64, 16, 3, 128, 2, 2).state_dict(), path)  # official names, tiny size
    monkeypatch.setenv("DLVIZ_WEIGHTS", str(tmp_path))
    at = open_page(PAGE)
    charts_before = len({chart_key(c.key) for c in at.get("plotly_chart")})  # a chart can have several slots
    at.selectbox(key="dino.ckpt").set_value("tiny_dino.pth").run()
    at.select_slider(key="dino.side").set_value(112).run()
    _no_exception(at)
    assert any("2 blocks" in c.value for c in at.caption)
    assert len({chart_key(c.key) for c in at.get("plotly_chart")}) == charts_before + 2  # the two sample photos
