"""AppTest of the CLIP page: renders, starts, draws; typed captions (unknown words, empty) give notes, not errors."""

from conftest import open_page, refresh_until_trained

CLIP = "pages/75_clip.py"


def test_clip_page_start_search_and_pick():
    at = open_page(CLIP)
    assert not at.exception, [e.message for e in at.exception]
    assert at.selectbox(key="clip.preset").value == "zero-shot"
    at.select_slider(key="clip.batch_size").set_value(32).run()
    at.slider(key="clip.eval_every").set_value(5).run()
    at.button(key="clip.play").click().run()
    runner = refresh_until_trained(at, "clip")
    assert not at.exception, [e.message for e in at.exception]
    assert runner.latest.step > 0
    at.text_input(key="clip.query").set_value("a zebra in the top left").run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("zebra" in i.value and "not in the vocabulary" in i.value for i in at.info)
    at.text_input(key="clip.query").set_value("").run()
    at.slider(key="clip.pick").set_value(719).run()
    assert not at.exception, [e.message for e in at.exception]
