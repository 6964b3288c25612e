"""AppTest of the loss-surfaces page: each part renders, runs start, a bad formula is a message, views compute."""

from conftest import open_page, refresh_until_trained

PAGE = "pages/20_loss_surfaces.py"


def _no_exception(at):
    assert not at.exception, [e.message for e in at.exception]


def test_critical_points_defaults_start_and_widgets():
    at = open_page(PAGE)
    _no_exception(at)
    assert at.selectbox(key="surf.preset").value == "lee"
    assert any("19 critical points" in c.value for c in at.caption)
    at.button(key="surf.play").click().run()
    refresh_until_trained(at, "surf")
    _no_exception(at)
    assert at.session_state["surf._runner"].latest.step > 0
    at.slider(key="surf.px").set_value(0.0).run()
    at.toggle(key="surf.field").set_value(True).run()
    at.selectbox(key="surf.surface").set_value("himmelblau").run()
    _no_exception(at)
    assert any("9 critical points" in c.value for c in at.caption)


def test_bad_formula_is_a_message():
    at = open_page(PAGE)
    at.selectbox(key="surf.surface").set_value("custom").run()
    at.text_input(key="surf.formula").set_value("__import__('os').system('ls')").run()
    _no_exception(at)
    # Messages show the typed text escaped (plain text, not markdown): \_\_import\_\_ renders as __import__.
    assert any("\\_\\_import\\_\\_" in e.value and "character 1" in e.value for e in at.error)
    at.text_input(key="surf.formula").set_value("x^4 - 2x^2 + y^2").run()
    _no_exception(at)
    assert not at.error and any("3 critical points" in c.value for c in at.caption)


def test_mse_section():
    at = open_page(PAGE)
    at.segmented_control(key="surf.section").set_value("MSE vs cross-entropy").run()
    _no_exception(at)
    at.select_slider(key="mse.lr").set_value(0.5).run()
    _no_exception(at)
    assert any("under MSE" in c.value for c in at.caption)


def test_landscape_section_run_and_views():
    at = open_page(PAGE)
    at.segmented_control(key="surf.section").set_value("Landscape of a real network").run()
    _no_exception(at)
    at.selectbox(key="land.model").set_value("mlp-2d").run()
    at.slider(key="land.grid").set_value(7).run()
    at.button(key="land.play").click().run()
    refresh_until_trained(at, "land")
    _no_exception(at)
    runner = at.session_state["land._runner"]
    assert runner.latest.step > 0 and runner.config.model == "mlp-2d"
    if not at.button(key="land.pause").disabled:  # still running (a slow machine): pause it
        at.button(key="land.pause").click().run()
    at.button(key="land.slices_go").click().run()
    _no_exception(at)
    assert any("its center equals the model's loss" in c.value for c in at.caption)
    at.button(key="land.curvature_go").click().run()
    _no_exception(at)
    assert any("λ_max" in c.value for c in at.caption)
