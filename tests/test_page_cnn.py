"""AppTest of the home page and the CNN page: renders, widgets change, runs start, bad settings are handled."""

from conftest import open_page, refresh_until_trained, wait_for

CNN = "pages/10_cnn.py"


def _no_exception(at):
    assert not at.exception, [e.message for e in at.exception]


def test_home_lists_every_topic():
    from dlviz.ui.topics import discover

    at = open_page()
    _no_exception(at)
    assert len(discover()) >= 1
    # The sidebar has the device, the seed and lecture mode.
    assert at.sidebar.toggle(key="dlviz.lecture") is not None
    assert at.sidebar.number_input(key="dlviz.seed").value == 0


def test_app_turns_off_the_full_gc_after_every_run():
    """150 ms per live refresh otherwise (README, Measured): app.py sets it even without the config file."""
    from streamlit import config

    config.set_option("runner.postScriptGC", True)
    _no_exception(open_page())
    assert config.get_option("runner.postScriptGC") is False


def test_cnn_page_defaults_and_start():
    at = open_page(CNN)
    _no_exception(at)
    assert at.selectbox(key="cnn.preset").value == "modern"
    before = at.metric[0].value
    at.button(key="cnn.play").click().run()
    refresh_until_trained(at, "cnn")
    _no_exception(at)
    assert at.session_state["cnn._runner"].latest.step > 0
    assert at.metric[0].value != before or at.session_state["cnn._runner"].latest.step > 0


def test_cnn_widgets_change_without_error():
    at = open_page(CNN)
    at.selectbox(key="cnn.activation").set_value("sigmoid").run()
    at.selectbox(key="cnn.pool").set_value("avg").run()
    at.selectbox(key="cnn.optimizer").set_value("momentum").run()
    at.select_slider(key="cnn.input_size").set_value(8).run()
    at.select_slider(key="cnn.lr").set_value(0.1).run()
    at.slider(key="cnn.digit").set_value(7).run()
    at.radio(key="cnn.proj").set_value("t-SNE").run()
    _no_exception(at)
    runner = at.session_state["cnn._runner"]
    assert runner.config.activation == "sigmoid" and runner.config.input_size == 8


def test_slider_mid_run_keeps_the_run():
    at = open_page(CNN)
    at.button(key="cnn.play").click().run()
    runner = at.session_state["cnn._runner"]
    step = runner.latest.step
    at.select_slider(key="cnn.lr").set_value(0.001).run()
    _no_exception(at)
    same = at.session_state["cnn._runner"]
    assert same is runner and same.latest.step >= step and same.config.lr == 0.01
    assert any("press Reset" in w.value for w in at.warning)


def test_lr_too_high_preset_stops_with_message():
    at = open_page(CNN)
    at.selectbox(key="cnn.preset").set_value("lr-too-high").run()
    at.button(key="cnn.play").click().run()
    wait_for(at, "cnn", lambda r: r.finished)
    _no_exception(at)
    assert at.session_state["cnn._runner"].status == "failed"
    assert any("learning rate" in e.value and "too high" in e.value for e in at.error)


def test_link_reproduces_config_and_bad_values_warn():
    at = open_page(CNN, query={"preset": "modern", "lr": "0.001", "seed": "5", "epochs": "999"})
    _no_exception(at)
    runner = at.session_state["cnn._runner"]
    assert runner.config.lr == 0.001 and runner.config.seed == 5
    assert any("epochs" in w.value for w in at.warning)


def test_missing_dataset_is_a_message(tmp_path, monkeypatch):
    monkeypatch.setenv("DLVIZ_DATA", str(tmp_path))
    at = open_page(CNN)
    at.selectbox(key="cnn.dataset").set_value("mnist").run()
    _no_exception(at)
    assert any("MNIST" in e.value and "digits" in e.value for e in at.error)


def test_lecture_mode_collapses_controls():
    at = open_page(CNN)
    at.session_state["dlviz.lecture"] = True
    at.run()
    _no_exception(at)
    assert at.expander[0].proto.expanded is False
