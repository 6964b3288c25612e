"""AppTest of the multiple-instance learning page, in Chinese (``?lang=zh``; the fuzz test renders it in English):
renders, starts, redraws while training, the bag view, presets switch; texts translated, values and feature-source
keys unchanged."""

from conftest import open_page, refresh_until_trained, wait_for

from dlviz.i18n import language

MIL = "pages/87_mil.py"


def _no_exception(at):
    assert not at.exception, [e.message for e in at.exception]


def test_mil_page_start_refresh_bag_view_and_presets():
    # AppTest formats a selectbox's value in the test's thread: the page's language there too.
    with language("zh"):
        at = open_page(MIL, query={"lang": "zh"})
        _no_exception(at)
        assert at.title[0].value == "多示例学习：哪个示例决定了包？"
        assert any("置换不变汇聚" in m.value for m in at.markdown)
        at.selectbox(key="mil.poolings").set_value("attention-vs-gated").run()
        at.slider(key="mil.bag_size").set_value(5).run()
        at.slider(key="mil.eval_every").set_value(5).run()
        at.button(key="mil.play").click().run()
        refresh_until_trained(at, "mil", pause=False)
        for _ in range(2):  # redraws while it trains
            at.run()
            _no_exception(at)
        runner = wait_for(at, "mil", lambda r: r.latest is not None and r.latest.step >= 10)
        _no_exception(at)
        assert runner.latest.step > 0 and "attention_acc" in runner.history[-1]
        assert len(at.dataframe) >= 1 and len(at.dataframe[0].value) == 2  # one row per pooling
        table = at.dataframe[0].value
        assert "汇聚方式" in table.columns and set(table["汇聚方式"]) == {"注意力", "门控注意力"}
        at.selectbox(key="mil.bag").set_value(9).run()  # a negative bag
        _no_exception(at)
        assert "负" in at.selectbox(key="mil.bag").format_func(9)
        # feature sources keep English keys (Msg), whatever the reader's language
        assert any("MIL (gated attention)" in name for name in at.session_state["dlviz.feature_sources"])
        # a preset, applied by Reset
        at.selectbox(key="mil.preset").set_value("mean-drowns-rare-positive").run()
        _no_exception(at)
        assert at.slider(key="mil.bag_size").value == 50
        at.button(key="mil.reset").click().run()
        _no_exception(at)
        assert at.session_state["mil._runner"].config.bag_size == 50
