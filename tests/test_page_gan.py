"""AppTest of the GAN page: the three demos render, start, take widget changes, and bad settings give messages."""

from conftest import open_page, refresh_until_trained, wait_for

from dlviz.demos.gan import PRESETS, Config

GAN = "pages/60_gan.py"


def _no_exception(at):
    assert not at.exception, [e.message for e in at.exception]


def test_2d_defaults_start_and_widgets():
    at = open_page(GAN)
    _no_exception(at)
    assert at.radio(key="gan.view").value == "2d"
    assert at.selectbox(key="gan.2d.preset").value == "ring-covered"
    assert any(m.label == "modes covered" for m in at.metric)
    at.button(key="gan.2d.play").click().run()
    refresh_until_trained(at, "gan.2d", pause=False)
    _no_exception(at)
    assert at.session_state["gan.2d._runner"].latest.step > 0
    at.button(key="gan.2d.pause").click().run()
    assert at.session_state["gan.2d._runner"].status == "paused"
    at.toggle(key="gan.2d.layer.gradients").set_value(False).run()
    at.selectbox(key="gan.2d.loss").set_value("wgan-gp").run()
    at.selectbox(key="gan.2d.dataset").set_value("affine").run()
    at.select_slider(key="gan.2d.noise_dim").set_value(1).run()
    at.button(key="gan.2d.reset").click().run()
    _no_exception(at)
    runner = at.session_state["gan.2d._runner"]
    assert runner.config.loss == "wgan-gp" and runner.config.dataset == "affine" and runner.config.noise_dim == 1
    assert any(m.label == "mean f(real)" for m in at.metric)  # a critic, not a probability
    at.selectbox(key="gan.2d.preset").set_value("ring-collapse").run()
    _no_exception(at)
    assert at.select_slider(key="gan.2d.g_lr").value == PRESETS["ring-collapse"].config.g_lr != Config().g_lr


def test_1d_and_digits_views_start():
    at = open_page(GAN)
    for view in ("1d", "digits"):
        at.radio(key="gan.view").set_value(view).run()
        _no_exception(at)
        at.button(key=f"gan.{view}.play").click().run()
        refresh_until_trained(at, f"gan.{view}")
        _no_exception(at)
        assert at.session_state[f"gan.{view}._runner"].latest.step > 0
    assert any(m.label == "class entropy" for m in at.metric)
    assert at.query_params["view"] == ["digits"] or at.query_params["view"] == "digits"


def test_diverging_learning_rate_stops_with_message():
    at = open_page(GAN, query={"view": "2d", "g_optimizer": "sgd", "d_optimizer": "sgd", "g_lr": "1.0",
                               "d_lr": "1.0", "loss": "least-squares"})
    _no_exception(at)
    at.button(key="gan.2d.play").click().run()
    wait_for(at, "gan.2d", lambda r: r.finished)
    _no_exception(at)
    runner = at.session_state["gan.2d._runner"]
    assert runner.status == "failed"
    assert any("learning rate" in e.value for e in at.error)
