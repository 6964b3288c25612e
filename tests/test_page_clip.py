"""AppTest of the CLIP page: renders, starts, draws; typed captions (unknown words, empty) give notes, not errors."""

from conftest import open_page, refresh_until_trained

CLIP = "pages/75_clip.py"


def test_clip_page_start_search_and_pick():
    # A tiny run set through the URL (as a shared link would): 10 steps of 32 pairs, a snapshot every 5.
    at = open_page(CLIP, query={"batch_size": "32", "steps": "10", "eval_every": "5"})
    assert not at.exception, [e.message for e in at.exception]
    assert at.selectbox(key="clip.preset").value == "zero-shot"
    at.button(key="clip.play").click().run()
    runner = refresh_until_trained(at, "clip")
    assert not at.exception, [e.message for e in at.exception]
    assert runner.latest.step > 0 and runner.config.batch_size == 32 and runner.config.steps == 10
    assert any("zero-shot" in m.value and f"step {runner.latest.step}" in m.value for m in at.markdown)
    at.text_input(key="clip.query").set_value("a zebra in the top left")
    at.slider(key="clip.pick").set_value(719).run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("zebra" in i.value and "not in the vocabulary" in i.value for i in at.info)
    at.text_input(key="clip.query").set_value("").run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Type a caption" in c.value for c in at.caption)
