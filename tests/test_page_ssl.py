"""AppTest of the self-supervised learning page: renders, widgets change, runs start, comparisons draw."""

from conftest import open_page, refresh_until_trained

SSL = "pages/70_ssl.py"


def _no_exception(at):
    assert not at.exception, [e.message for e in at.exception]


def test_ssl_page_defaults_and_start():
    at = open_page(SSL)
    _no_exception(at)
    assert at.selectbox(key="ssl.preset").value == "simsiam"
    at.select_slider(key="ssl.batch_size").set_value(32).run()
    at.select_slider(key="ssl.width").set_value(8).run()
    at.slider(key="ssl.eval_every").set_value(2).run()
    at.button(key="ssl.play").click().run()
    refresh_until_trained(at, "ssl")
    _no_exception(at)
    runner = at.session_state["ssl._runner"]
    assert runner.latest.step > 0 and "loss" in runner.history[-1]
    assert any("SSL (SimSiam)" in name for name in at.session_state["dlviz.feature_sources"])


def test_ssl_comparison_preset_draws_two_runs():
    at = open_page(SSL)
    at.selectbox(key="ssl.preset").set_value("simsiam-no-stop-grad").run()
    _no_exception(at)
    assert at.session_state["ssl._runner"].config.compare == "stop_grad"
    assert any("no stop-grad" in m.value for m in at.markdown)
    at.toggle(key="ssl.tsne_on").set_value(True).run()
    _no_exception(at)


def test_ssl_widgets_change_without_error():
    at = open_page(SSL)
    at.selectbox(key="ssl.method").set_value("simclr").run()
    at.select_slider(key="ssl.temperature").set_value(1.0).run()
    at.selectbox(key="ssl.compare").set_value("stop_grad").run()
    _no_exception(at)
    assert any("SimCLR has no" in w.value for w in at.warning)
    at.selectbox(key="ssl.method").set_value("byol").run()
    at.selectbox(key="ssl.compare").set_value("head_bn").run()
    at.selectbox(key="ssl.dataset").set_value("digits-clutter").run()
    at.button(key="ssl.reroll").click().run()
    _no_exception(at)
    runner = at.session_state["ssl._runner"]
    assert runner.config.method == "byol" and runner.config.dataset == "digits-clutter"


def test_ssl_missing_dataset_and_high_lr(tmp_path, monkeypatch):
    monkeypatch.setenv("DLVIZ_DATA", str(tmp_path))
    at = open_page(SSL)
    at.selectbox(key="ssl.dataset").set_value("mnist").run()
    _no_exception(at)
    assert any("MNIST" in e.value for e in at.error)


def test_ssl_page_moco_trains_and_shows_its_queue():
    at = open_page(SSL)
    at.selectbox(key="ssl.method").set_value("moco").run()
    at.select_slider(key="ssl.batch_size").set_value(32).run()
    at.select_slider(key="ssl.width").set_value(8).run()
    at.select_slider(key="ssl.queue_size").set_value(128).run()
    at.slider(key="ssl.eval_every").set_value(2).run()
    at.button(key="ssl.play").click().run()
    refresh_until_trained(at, "ssl")
    _no_exception(at)
    runner = at.session_state["ssl._runner"]
    assert runner.config.method == "moco" and runner.latest.step > 0
    assert "neg_consistency" in runner.history[-1] and "key_drift" in runner.history[-1]
    assert any("steps old on average" in c.value for c in at.caption)
    at.toggle(key="ssl.sweep_on").set_value(True).run()
    _no_exception(at)
    assert any("Press the button to train the sweep" in i.value for i in at.info)
