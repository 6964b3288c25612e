"""AppTest of the recurrent-networks page: renders, widgets change, runs start, an exploding cell is a message."""

from conftest import open_page, refresh_until_trained, wait_for

RNN = "pages/40_rnn.py"


def _no_exception(at):
    assert not at.exception, [e.message for e in at.exception]


def test_rnn_page_defaults_and_start():
    at = open_page(RNN)
    _no_exception(at)
    assert at.selectbox(key="rnn.preset").value == "adding-l50"
    assert [m.label for m in at.metric][:3] == ["plain RNN test MSE", "GRU test MSE", "LSTM test MSE"]
    at.button(key="rnn.play").click().run()
    refresh_until_trained(at, "rnn")
    _no_exception(at)
    runner = at.session_state["rnn._runner"]
    assert runner.latest.step > 0 and "test_loss_gru" in runner.history[-1]
    # Gate views: the GRU's two gates and the LSTM's three, from the probe of the latest snapshot, computed once for
    # every session watching the run (shared_view).
    probes = [hit for key, hit in runner._views.items() if key[0] == "probe"]
    assert len(probes) == 1 and probes[0][0][0] == runner.snapshots_seen and set(probes[0][1]) >= {"gru", "lstm"}


def test_rnn_widgets_change_without_error():
    at = open_page(RNN)
    at.slider(key="rnn.seq").set_value(500).run()  # beyond the sine's 396 test windows: clamped below
    at.select_slider(key="rnn.clip").set_value(1.0).run()
    at.selectbox(key="rnn.cells").set_value("gru").run()
    at.selectbox(key="rnn.task").set_value("recall").run()
    _no_exception(at)
    assert [m.label for m in at.metric][0] == "GRU test accuracy"
    at.selectbox(key="rnn.task").set_value("sine").run()
    _no_exception(at)
    assert at.radio(key="rnn.kcell").value == "gru" and at.slider(key="rnn.seq").value == 395
    runner = at.session_state["rnn._runner"]
    assert runner.config.task == "sine" and runner.config.clip == 1.0


def test_exploding_preset_warns_and_the_gru_trains_on():
    at = open_page(RNN)
    at.selectbox(key="rnn.preset").set_value("exploding").run()
    at.button(key="rnn.play").click().run()
    wait_for(at, "rnn", lambda r: bool(r.latest.arrays["diverged"]) or r.finished)
    _no_exception(at)
    runner = at.session_state["rnn._runner"]
    assert runner.status != "failed" and "rnn" in runner.latest.arrays["diverged"]
    assert any("plain RNN diverged" in w.value and "clipping" in w.value for w in at.warning)


def test_link_opens_the_multistep_preset():
    at = open_page(RNN, query={"preset": "multistep", "seed": "3"})
    _no_exception(at)
    runner = at.session_state["rnn._runner"]
    assert runner.config.task == "sine" and runner.config.seed == 3
    assert at.radio(key="rnn.kcell") is not None
