"""AppTest of the CLIP page, in Chinese (``?lang=zh``; the fuzz test renders it in English): renders, starts,
draws; typed captions (unknown words, empty) give notes, not errors; texts translated, the captions the model
reads (prompts, typed and listed captions, the vocabulary) stay English."""

from conftest import open_page, refresh_until_trained

from dlviz.i18n import language

CLIP = "pages/75_clip.py"


def test_clip_page_start_search_and_pick():
    # A tiny run set through the URL (as a shared link would): 10 steps of 32 pairs, a snapshot every 5.
    with language("zh"):  # AppTest formats widget values in the test's thread: the page's language there too
        at = open_page(CLIP, query={"batch_size": "32", "steps": "10", "eval_every": "5", "lang": "zh"})
        assert not at.exception, [e.message for e in at.exception]
        assert at.title[0].value == "CLIP：图像与文本描述共处一个空间"
        assert at.selectbox(key="clip.preset").value == "zero-shot"
        at.button(key="clip.play").click().run()
        runner = refresh_until_trained(at, "clip")
        assert not at.exception, [e.message for e in at.exception]
        assert runner.latest.step > 0 and runner.config.batch_size == 32 and runner.config.steps == 10
        assert any("零样本" in m.value and f"第 {runner.latest.step} 步" in m.value for m in at.markdown)
        assert any("只读英文" in c.value for c in at.caption)  # said once: the model reads English captions
        assert at.text_input(key="clip.query").value == "a large red seven in the top left"  # English input
        at.text_input(key="clip.query").set_value("a zebra in the top left")
        at.slider(key="clip.pick").set_value(719).run()
        assert not at.exception, [e.message for e in at.exception]
        note = [i.value for i in at.info if "zebra" in i.value]
        assert note and "不在词表中" in note[0] and "seven" in note[0]  # the known words listed, in English
        at.text_input(key="clip.query").set_value("").run()
        assert not at.exception, [e.message for e in at.exception]
        assert any("输入一条英文描述" in c.value for c in at.caption)
