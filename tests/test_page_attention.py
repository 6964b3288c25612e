"""AppTest of the attention page: every part renders, widgets change, both live demos start, links round-trip."""

from conftest import open_page, refresh_until_trained

PAGE = "pages/50_attention.py"


def _no_exception(at):
    assert not at.exception, [e.message for e in at.exception]


def test_kernel_part_defaults_and_start():
    at = open_page(PAGE)
    _no_exception(at)
    assert at.radio(key="attn.part").value == "kernel"
    assert at.selectbox(key="attn.kr.preset").value == "learned-width"
    at.button(key="attn.kr.play").click().run()
    refresh_until_trained(at, "attn.kr")
    _no_exception(at)
    runner = at.session_state["attn.kr._runner"]
    assert runner.latest.step > 0 and runner.latest.metrics["w"] != 1.0
    at.selectbox(key="attn.kr.preset").set_value("no-leave-one-out").run()
    _no_exception(at)


def test_scoring_and_position_parts_follow_their_widgets():
    at = open_page(PAGE)
    at.radio(key="attn.part").set_value("scoring").run()
    _no_exception(at)
    at.select_slider(key="attn.sc.d").set_value(256).run()
    at.slider(key="attn.sc.keys").set_value(4).run()
    _no_exception(at)
    at.radio(key="attn.part").set_value("position").run()
    at.slider(key="attn.pe.n").set_value(20).run()
    at.select_slider(key="attn.pe.d").set_value(8).run()
    _no_exception(at)
    at.multiselect(key="attn.pe.cols").set_value([]).run()
    _no_exception(at)
    assert any("Pick at least one column" in i.value for i in at.info)
    assert at.query_params["part"] == ["position"] or at.query_params["part"] == "position"


def test_transformer_part_runs_and_enlarges_a_head():
    at = open_page(PAGE, query={"part": "transformer", "d_model": "16", "layers": "1", "length": "5"})
    _no_exception(at)
    runner = at.session_state["attn.tf._runner"]
    assert runner.config.d_model == 16 and runner.config.layers == 1 and runner.config.length == 5
    at.button(key="attn.tf.play").click().run()
    refresh_until_trained(at, "attn.tf")
    _no_exception(at)
    assert at.session_state["attn.tf._runner"].latest.step > 0
    at.selectbox(key="attn.tf.kind").set_value("dec_self").run()
    at.selectbox(key="attn.tf.head").set_value(2).run()
    at.slider(key="attn.tf.example").set_value(3).run()
    _no_exception(at)


def test_encoder_only_and_bad_link_values():
    at = open_page(PAGE, query={"part": "transformer", "preset": "encoder-only", "layers": "99"})
    _no_exception(at)
    assert at.session_state["attn.tf._runner"].config.architecture == "encoder-only"
    assert any("layers" in w.value for w in at.warning)
    # Switching part must not carry the transformer's settings into the kernel demo.
    at.radio(key="attn.part").set_value("kernel").run()
    _no_exception(at)
    assert at.session_state["attn.kr._runner"].config.lr == 0.5
