"""AppTest of the optimizer page: renders, runs, scrubs, shows divergence as a note, handles bad formulas."""

from conftest import open_page, wait_for

PAGE = "pages/30_optimizers.py"

def _no_exception(at):
    assert not at.exception, [e.message for e in at.exception]


def _finish(at):
    wait_for(at, "optimizers", lambda r: r.finished)


def test_defaults_start_and_scrub():
    at = open_page(PAGE)
    _no_exception(at)
    assert at.selectbox(key="optimizers.preset").value == "d2l-quadratic"
    at.toggle(key="optimizers.smooth").set_value(False).run()
    at.button(key="optimizers.play").click().run()
    _finish(at)
    _no_exception(at)
    runner = at.session_state["optimizers._runner"]
    assert runner.status == "done" and runner.latest.step == 20
    scrub = [s for s in at.slider if s.key and s.key.startswith("optimizers.scrub")]
    assert scrub and scrub[0].value == 20
    scrub[0].set_value(5).run()
    _no_exception(at)


def test_diverging_preset_is_a_note_not_a_crash():
    at = open_page(PAGE)
    at.selectbox(key="optimizers.preset").set_value("gd-lr-0.6").run()
    at.toggle(key="optimizers.smooth").set_value(False).run()
    at.button(key="optimizers.play").click().run()
    _finish(at)
    _no_exception(at)
    assert at.session_state["optimizers._runner"].status == "done"
    assert not at.error
    assert any("diverged" in w.value and "2/L = 0.5" in w.value for w in at.warning)


def test_widgets_change_without_error():
    at = open_page(PAGE)
    at.selectbox(key="optimizers.surface").set_value("himmelblau").run()
    at.number_input(key="optimizers.start_x").set_value(0.5).run()
    at.selectbox(key="optimizers.schedule").set_value("warmup-linear").run()
    at.slider(key="optimizers.noise").set_value(0.2).run()
    at.toggle(key="optimizers.nesterov").set_value(True).run()
    at.select_slider(key="optimizers.lr_adam").set_value(0.1).run()
    _no_exception(at)
    runner = at.session_state["optimizers._runner"]
    assert runner.config.surface == "himmelblau" and runner.config.nesterov and runner.config.noise == 0.2
    at.radio(key="optimizers.part").set_value("condition").run()
    at.select_slider(key="optimizers.kappa").set_value(10).run()
    at.radio(key="optimizers.part").set_value("batch").run()
    at.select_slider(key="optimizers.reg_lr").set_value(0.1).run()
    _no_exception(at)


def test_bad_formula_and_no_optimizer_are_messages():
    at = open_page(PAGE)
    at.selectbox(key="optimizers.surface").set_value("custom").run()
    at.text_input(key="optimizers.formula").input("x^2 + import os").run()
    _no_exception(at)
    assert any("formula" in e.value for e in at.error)
    at.text_input(key="optimizers.formula").input("x^2 + 3*y^2").run()
    _no_exception(at)
    assert not at.error
    for name in ("sgd", "momentum", "adagrad", "rmsprop", "adam"):
        at.toggle(key=f"optimizers.{name}").set_value(False).run()
    _no_exception(at)
    assert any("at least one optimizer" in w.value for w in at.warning)


def test_saddle_preset_notes_the_escape():
    at = open_page(PAGE)
    at.selectbox(key="optimizers.preset").set_value("saddle").run()
    at.toggle(key="optimizers.smooth").set_value(False).run()
    at.button(key="optimizers.play").click().run()
    _finish(at)
    _no_exception(at)
    assert at.session_state["optimizers._runner"].status == "done"
    assert any("escaped" in i.value for i in at.info)


def test_network_tab_trains_and_projects():
    at = open_page(PAGE, query={"part": "network"})
    at.select_slider(key="optimizers.net_steps").set_value(100).run()
    at.multiselect(key="optimizers.net_opts").set_value(["sgd", "adam"]).run()
    at.button(key="optimizers_net.play").click().run()
    wait_for(at, "optimizers_net", lambda r: r.latest.step > 0)
    _no_exception(at)
    runner = at.session_state["optimizers_net._runner"]
    assert runner.latest.step > 0 and runner.config.names() == ["sgd", "adam"]
    at.button(key="optimizers.net_plane_go").click().run()
    _no_exception(at)
    assert at.session_state["optimizers.net_plane"][2]["L"].shape == (25, 25)


def _q(at, name: str):
    value = at.query_params.get(name)
    return value[0] if isinstance(value, list) else value


def test_the_part_is_in_the_link_and_a_refresh_restores_it():
    """st.tabs kept no state: a refresh always showed the race. The part is a radio kept in the link (?part=)."""
    at = open_page(PAGE, query={"part": "condition"})
    _no_exception(at)
    assert at.session_state["optimizers.part"] == "condition" and _q(at, "part") == "condition"
    assert at.select_slider(key="optimizers.kappa").value == 100  # the part's own widgets, and not the race's
    assert not [b for b in at.button if b.key == "optimizers.play"]
    at.radio(key="optimizers.part").set_value("network").run()
    assert _q(at, "part") == "network" and at.multiselect(key="optimizers.net_opts").value
    refreshed = open_page(PAGE, query={k: _q(at, k) for k in at.query_params})  # a new session opens the link
    assert refreshed.session_state["optimizers.part"] == "network" and _q(refreshed, "part") == "network"
    at.radio(key="optimizers.part").set_value("race").run()  # back to the race: its settings go into the link
    assert _q(at, "part") == "race" and _q(at, "preset") == "d2l-quadratic"
    bad = open_page(PAGE, query={"part": "<b>x</b>"})
    assert bad.session_state["optimizers.part"] == "race" and not bad.exception
