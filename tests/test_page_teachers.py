"""AppTest of the teacher-and-student page: both parts render, train, draw, and keep the part in the link."""

from conftest import open_page, refresh_until_trained

PAGE = "pages/85_teachers.py"


def _no_exception(at):
    assert not at.exception, [e.message for e in at.exception]


def test_distill_part_trains_and_draws_the_teacher_view():
    at = open_page(PAGE)
    _no_exception(at)
    assert at.radio(key="teach.part").value == "distill"
    assert at.selectbox(key="teach.kd.preset").value == "kd-100-labels"
    at.slider(key="teach.kd.teacher_epochs").set_value(3).run()
    at.slider(key="teach.kd.eval_every").set_value(5).run()
    at.button(key="teach.kd.play").click().run()
    runner = refresh_until_trained(at, "teach.kd")
    _no_exception(at)
    assert runner.latest.step > 0 and "kd_loss" in runner.history[-1]
    assert runner.config.teacher_epochs == 3
    at.slider(key="teach.kd.digit").set_value(100).run()
    at.toggle(key="teach.kd.sweep_on").set_value(True).run()
    _no_exception(at)
    assert any("Compute the T sweep" in b.label for b in at.button)
    assert at.query_params.get("part") in ("distill", ["distill"])


def test_ema_part_from_a_link_and_widgets():
    at = open_page(PAGE, query={"part": "ema"})
    _no_exception(at)
    assert at.radio(key="teach.part").value == "ema"
    assert any("BYOL" in m.value for m in at.markdown)
    at.select_slider(key="teach.ema.ema").set_value(0.0).run()
    at.slider(key="teach.ema.steps").set_value(100).run()
    at.button(key="teach.ema.play").click().run()
    runner = refresh_until_trained(at, "teach.ema")
    _no_exception(at)
    assert runner.config.ema == 0.0 and runner.latest.metrics["ema_acc"] == runner.latest.metrics["raw_acc"]
    at.radio(key="teach.part").set_value("distill").run()
    _no_exception(at)
    assert at.query_params.get("part") in ("distill", ["distill"])
