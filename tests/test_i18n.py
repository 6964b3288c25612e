"""Translations: the catalogue covers the code, the .mo matches the .po, each session has its own language, the
link ``?lang=zh`` and the sidebar switch work, and switching mid-run keeps the run."""

from __future__ import annotations

import fnmatch
import re
import threading
from pathlib import Path

import pytest
from conftest import open_page, wait_for

from dlviz import i18n
from dlviz.i18n import _, language
from dlviz.i18n_extract import messages

ROOT = Path(__file__).resolve().parents[1]
ALLOW = ROOT / "dlviz" / "locale" / "untranslated.txt"
PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def _listed(path: str, allowed) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in allowed)


def _allowed_files() -> set[str]:
    return {ln.strip() for ln in ALLOW.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")}


@pytest.fixture(scope="module")
def extracted():
    pytest.importorskip("babel", reason="babel (requirements-dev.txt) extracts the catalogue")
    return i18n.extract_catalog()


def test_every_message_has_a_chinese_translation(extracted):
    allowed = _allowed_files()
    missing = [(msgid, where) for msgid, where in i18n.untranslated(extracted)
               if not all(_listed(path, allowed) for path, _line in where)]
    assert not missing, ("untranslated (run `python -m dlviz.i18n update`, fill the msgstr in "
                         "dlviz/locale/zh_CN/LC_MESSAGES/dlviz.po, then `python -m dlviz.i18n compile`):\n"
                         + "\n".join(f"  {where[0][0]}:{where[0][1]}: {msgid!r}" for msgid, where in missing[:40]))


def test_the_allowlist_only_names_files_that_still_need_it(extracted):
    """A pattern none of whose files has an untranslated string leaves the allowlist (it only shrinks)."""
    todo = {path for _msgid, where in i18n.untranslated(extracted) for path, _line in where}
    stale = [f for f in _allowed_files() if not any(_listed(path, [f]) for path in todo)]
    assert not stale, f"translated now: delete {stale} from {ALLOW.name}"


def test_translations_keep_placeholders_and_the_mo_matches_the_po():
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    with open(i18n.PO, "rb") as f:
        po = read_po(f, locale="zh_CN")
    with open(i18n.MO, "rb") as f:
        mo = read_mo(f)
    wrong = [m.id for m in po if m.id and m.string and sorted(PLACEHOLDER.findall(m.id))
             != sorted(PLACEHOLDER.findall(m.string))]
    assert not wrong, f"placeholders differ between msgid and msgstr: {wrong[:10]}"
    want = {m.id: m.string for m in po if m.id and m.string and not m.fuzzy}
    have = {m.id: m.string for m in mo if m.id}
    assert have == want, "the .mo is stale: run `python -m dlviz.i18n compile` and commit the .mo"




def test_the_extractor_finds_data_strings_and_refuses_f_strings():
    src = '''"""Title line
icon: 🧪
Summary line.
"""
a = param(1, "help text", label="Label")
p = Preset("Preset title", C(), "a note", claim=Claim("claim text", check=f))
d = Demo(name="x", title="Demo title", summary="Demo summary", config_cls=C, presets={}, run=r)
e = _(f"not {a} message") + _("a message") + N_("marked")
'''
    found = [m for _l, _k, m in messages(src, "pages/99_x.py")]
    assert found[:2] == ["Title line", "Summary line."]
    for text in ("help text", "Label", "Preset title", "a note", "claim text", "Demo title", "Demo summary",
                 "a message", "marked"):
        assert text in found
    assert not any(m.startswith("not ") for m in found) and "x" not in found and "icon: 🧪" not in found


def test_language_is_per_context_and_english_outside_a_session():
    assert _("Settings") == "Settings"  # no streamlit session: English
    with language("zh"):
        assert _("Settings") == "设置" and _("Settings") != "Settings"
        seen = {}
        t = threading.Thread(target=lambda: seen.setdefault("other", _("Settings")))
        t.start(), t.join()
        assert seen["other"] == "Settings"  # another thread (a training worker) is not affected
    assert _("Settings") == "Settings" and _("") == ""


def _texts(at) -> str:
    return " ".join([*(t.value for t in at.title), *(c.value for c in at.caption), *(m.value for m in at.markdown),
                     *(b.label for b in at.button)])


def test_two_sessions_in_two_languages_and_the_link():
    zh, en = open_page(query={"lang": "zh"}), open_page()
    assert zh.session_state["dlviz.lang"] == "zh" and en.session_state["dlviz.lang"] == "en"
    zh.run(), en.run()
    assert "深度学习" in _texts(zh) and "深度学习" not in _texts(en)
    assert "deep learning, training live" in _texts(en)
    assert zh.query_params.get("lang") in ("zh", ["zh"]) and "lang" not in en.query_params
    # The switch takes effect at once and writes the link; English again removes it.
    zh.segmented_control(key="dlviz.lang_switch").set_value("en").run()
    assert zh.session_state["dlviz.lang"] == "en" and "deep learning, training live" in _texts(zh)
    assert "lang" not in zh.query_params
    assert not zh.exception and not en.exception


def test_switching_language_mid_run_keeps_the_run():
    at = open_page("pages/10_cnn.py", query={"preset": "modern", "epochs": "60"})
    at.button(key="cnn.play").click().run()
    runner = wait_for(at, "cnn", lambda r: r.latest is not None and r.latest.step > 0, pause=False)
    step = runner.latest.step
    at.session_state["dlviz.lang"] = "zh"  # what the sidebar switch's callback does (AppTest runs the page alone)
    # AppTest formats a selectbox's value in the test's thread when it reruns (a server does it in the session's
    # script thread): the page's language there, or it looks for an English preset title among Chinese ones.
    at.run()  # drawn in Chinese from here on
    with language("zh"):
        assert at.session_state["cnn._runner"] is runner and runner.status == "running"
        assert any("▶" in b.label or "暂停" in b.label for b in at.button) and "暂停" in _texts(at)
        assert any("训练中" in c.value for c in at.caption), [c.value for c in at.caption][:5]
        runner = wait_for(at, "cnn", lambda r: r.latest.step > step)
    assert at.session_state["cnn._runner"] is runner and runner.latest.step > step and runner.status != "failed"
    assert not at.exception


def test_messages_made_outside_the_ui_are_english_and_shown_translated():
    """A demo's DivergedError and a ConfigError carry a Msg: English as a str (CLI, logs), Chinese through tr()."""
    import copy

    from dlviz.config import ConfigError, with_overrides
    from dlviz.demos import get_demo
    from dlviz.demos.base import DivergedError, check_finite
    from dlviz.i18n import Msg, tr

    with pytest.raises(DivergedError) as err:
        check_finite(float("nan"), 3, "training loss")
    msg = err.value.args[0]
    assert isinstance(msg, Msg) and str(err.value) == msg
    assert msg.startswith("The training loss became NaN at step 3: training diverged. The learning rate")
    with language("zh"):
        zh = tr(copy.deepcopy(msg))  # a copied run keeps its message's msgid
    assert "训练损失" in zh and "第 3 步" in zh and "became" not in zh
    assert tr(msg) == msg  # English outside a Chinese context
    with pytest.raises(ConfigError) as err:
        with_overrides(get_demo("cnn").default_config(), {"nope": "1"})
    assert str(err.value).startswith("unknown setting 'nope'; known: ")
    with language("zh"):
        assert tr(err.value.args[0]).startswith("未知设置 'nope'；")


def test_error_messages_of_the_library_are_english_and_shown_translated(tmp_path):
    """FormulaError reasons, DatasetMissing, CheckpointError, ImageRejected and the scheduler's notices are Msgs:
    the English (tests, CLI, logs) as before, Chinese through tr()."""
    from dlviz.analysis.formula import FormulaError, parse_formula
    from dlviz.data.digits import DatasetMissing, load_image_dataset
    from dlviz.data.uploads import ImageRejected, read_user_image
    from dlviz.i18n import Msg, tr
    from dlviz.models.rnn import CELL_NAMES
    from dlviz.models.vit import CheckpointError, load_dino_checkpoint

    def raised(kind, fn, *args):
        with pytest.raises(kind) as err:
            fn(*args)
        return err.value

    cases = [(raised(FormulaError, parse_formula, "x + foo(y)").reason, "unknown name 'foo'", "未知名称 'foo'"),
             (raised(DatasetMissing, load_image_dataset, "mnist", 8, str(tmp_path)).args[0], "MNIST was not found in",
              "中找不到 MNIST"),
             (raised(CheckpointError, load_dino_checkpoint, tmp_path / "none.pth").args[0], "No file at", "处没有文件"),
             (raised(ImageRejected, read_user_image, b"").args[0], "That file is empty", "该文件为空")]
    for msg, en, zh in cases:
        assert isinstance(msg, Msg) and msg.startswith(en), msg
        with language("zh"):
            assert zh in tr(msg), tr(msg)
    assert "at position 5" in str(raised(FormulaError, parse_formula, "x + foo(y)"))
    with language("zh"):
        assert tr(Msg(CELL_NAMES["rnn"])) != "plain RNN"



def test_a_choice_widget_reads_its_label_in_any_language():
    """Right after a language switch a rerun on its way carries the old language's label: a selectbox, radio or
    select slider reads it as its option (Streamlit returned the label itself, or the slider's default)."""
    from streamlit.elements.widgets.radio import RadioSerde
    from streamlit.elements.widgets.select_slider import SelectSliderSerde
    from streamlit.elements.widgets.selectbox import SelectboxSerde

    from dlviz.ui.settings import tolerate_stale_labels

    tolerate_stale_labels()
    tolerate_stale_labels()  # once only: a second call wraps nothing again
    options = ["preset", "lecture"]
    label = {"preset": "Preset", "lecture": "Lecture mode"}

    def fmt(o):
        return _(label[o])

    with language("zh"):
        zh = [fmt(o) for o in options]
        index = {t: i for i, t in enumerate(zh)}
        assert zh[1] != "Lecture mode"  # translated, or the test proves nothing
        box = SelectboxSerde(options, formatted_options=zh, formatted_option_to_option_index=index, format_func=fmt)
        radio = RadioSerde(options, formatted_options=zh, formatted_option_to_option_index=index, format_func=fmt)
        slider = SelectSliderSerde(options, formatted_option_to_index=index, default_indices=[0], format_func=fmt)
        assert box.deserialize("Lecture mode") == radio.deserialize("Lecture mode") == "lecture"  # English label
        assert slider.deserialize(["Lecture mode"]) == "lecture"  # not the default, "preset"
        assert box.deserialize(zh[0]) == "preset"  # the current language, as before
        assert box.deserialize("no such label") == "no such label"  # Streamlit's own answer, unchanged
