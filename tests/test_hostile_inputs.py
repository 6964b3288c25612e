"""Issue 15: a lecturer can never cause a traceback. Every hostile input ends in a result or a one-line message.

Formulas (library and page), uploads, checkpoints, dataset files and link values, each as a table.
"""

from __future__ import annotations

import io
import re
import struct
import zlib

import numpy as np
import pytest
import torch
from conftest import open_page, wait_for

from dlviz.analysis.critical_points import derivatives, find_critical_points
from dlviz.analysis.formula import FormulaError, parse_formula
from dlviz.data.digits import DatasetMissing, load_image_dataset
from dlviz.data.uploads import MAX_SIDE, ImageRejected, read_user_image
from dlviz.demos import loss_surfaces as lsd
from dlviz.demos.base import DivergedError
from dlviz.models import vit as vit_module
from dlviz.models.vit import CheckpointError, VisionTransformer, declared_vit_size, load_dino_checkpoint
from dlviz.ui.show import plain

LONG = "x^2 - y^2 + sin(x)cos(y) + " * 7 + "0.5xy + 1.2"  # exactly 200 characters: the limit
assert len(LONG) == 200
NESTED_OK = "(" * 30 + "x" + ")" * 30
NESTED_500 = "(" * 500 + "x" + ")" * 500
NESTED_DEEP = "(" * 60 + "x" + ")" * 60  # under 200 characters, deeper than the parser allows


def _fd(text, x, y, h=1e-5):
    """Central finite differences of a formula: gradient (2,) and Hessian (2, 2)."""
    s = parse_formula(text)
    f = lambda a, b: s.value(a, b)  # noqa: E731
    g = np.array([(f(x + h, y) - f(x - h, y)) / (2 * h), (f(x, y + h) - f(x, y - h)) / (2 * h)])
    k = 1e-3
    hxx = (f(x + k, y) - 2 * f(x, y) + f(x - k, y)) / k**2
    hyy = (f(x, y + k) - 2 * f(x, y) + f(x, y - k)) / k**2
    hxy = (f(x + k, y + k) - f(x + k, y - k) - f(x - k, y + k) + f(x - k, y - k)) / (4 * k**2)
    return g, np.array([[hxx, hxy], [hxy, hyy]])


# formula, what happens: "ok" (finite derivatives that match finite differences), "inf" (f is not finite, the run
# stops with a message naming the formula) or "refused" (FormulaError with a reason)
FORMULAS = [
    ("x^2", "ok"), ("x+y", "ok"), ("sin(x)", "ok"), ("5", "ok"), (LONG, "ok"), (NESTED_OK, "ok"),
    ("9^9^9", "inf"), (NESTED_500, "refused"), (NESTED_DEEP, "refused"), (LONG + "+x", "refused"),
]


@pytest.mark.parametrize("text, outcome", FORMULAS, ids=lambda v: v[:12] if isinstance(v, str) else v)
def test_formula_analysis_gives_a_result_or_a_message(text, outcome):
    if outcome == "refused":
        with pytest.raises(FormulaError) as info:
            parse_formula(text)
        assert info.value.reason
        return
    s = parse_formula(text)
    x, y = 0.3, 0.4
    with np.errstate(all="ignore"):
        f, g, H = derivatives(s, np.array([x]), np.array([y]))
        points = find_critical_points(s)
    if outcome == "ok":
        # Constant or linear in a variable: zeros there, not "element 0 of tensors does not require grad".
        g_ref, H_ref = _fd(text, x, y)
        np.testing.assert_allclose(g[0], g_ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(H[0], H_ref, rtol=1e-3, atol=1e-3)
        assert all(np.isfinite(p.eigenvalues).all() for p in points)
    else:
        assert not np.isfinite(f).any() and points == []
    # The live run: snapshots, or a DivergedError that names the formula.
    cfg = lsd.CPConfig(surface="custom", formula=text, steps=20, every=10)
    try:
        snaps = list(lsd.run_critical_points(cfg, torch.device("cpu")))
    except DivergedError as exc:
        assert outcome == "inf" and text in str(exc)
    else:
        assert outcome == "ok" and snaps[-1].step == 20 and np.isfinite(snaps[-1].metrics["loss"])


def test_known_derivatives_of_constant_and_linear_formulas():
    for text, grad, hess in [("5", (0, 0), ((0, 0), (0, 0))), ("x+y", (1, 1), ((0, 0), (0, 0))),
                             ("x^2", (0.6, 0), ((2, 0), (0, 0))), ("3y", (0, 3), ((0, 0), (0, 0)))]:
        f, g, H = derivatives(parse_formula(text), np.array([0.3]), np.array([0.4]))
        np.testing.assert_allclose(g[0], grad, atol=1e-12)
        np.testing.assert_allclose(H[0], hess, atol=1e-12)


@pytest.fixture(scope="module")
def surface_page():
    # The link form: /loss_surfaces?surface=custom&formula=x%5E2
    at = open_page("pages/20_loss_surfaces.py", query={"surface": "custom", "formula": "x^2"})
    assert not at.exception, [e.message for e in at.exception]
    assert at.text_input(key="surf.formula").value == "x^2" and not at.error
    at.button(key="surf.play").click().run()
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.session_state["surf._runner"].status in ("running", "done")
    return at


@pytest.mark.parametrize("text, outcome", FORMULAS + [("![](http://example.invalid/p.png)", "refused")],
                         ids=lambda v: v[:12] if isinstance(v, str) else v)
def test_formula_on_the_page_shows_a_result_or_a_message(surface_page, text, outcome):
    at = surface_page
    at.text_input(key="surf.formula").set_value(text).run()
    assert not at.exception, [e.message for e in at.exception]
    messages = [m.value for m in (*at.error, *at.warning)]
    if outcome == "ok":
        assert not at.error and at.get("plotly_chart") and any("critical points" in c.value for c in at.caption)
    elif outcome == "inf":
        assert any("9\\^9\\^9" in m and "undefined" in m for m in messages), messages
    else:
        assert any("The formula cannot be read" in m for m in messages), messages
    _assert_escaped(at, "example.invalid")
    if outcome == "ok":  # the live run on a custom surface: Reset, Start, one refresh
        at.button(key="surf.reset").click().run()
        at.button(key="surf.play").click().run()
        runner = wait_for(at, "surf", lambda r: r.latest.step > 0 or r.finished)
        assert not at.exception, [e.message for e in at.exception]
        assert runner.status in ("paused", "done") and runner.latest.step > 0, runner.message  # trained, then paused by wait_for


# -- uploads ----------------------------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR declaring width x height RGB, with a tiny IDAT: no big buffer is made."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _chunk(b"IEND", b""))


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _noise_png(h: int, w: int) -> bytes:
    return _png(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))


UPLOADS = [
    ("photo", lambda: _noise_png(300, 400), (300, 400, 3)),
    ("9 MB PNG", lambda: _noise_png(1750, 1750), (MAX_SIDE, MAX_SIDE, 3)),  # noise does not compress: ~8.8 MB
    ("wrong type", lambda: b"%PDF-1.4\n" + b"0" * 2000, "PNG or JPEG"),
    ("truncated PNG", lambda: _noise_png(300, 400)[:5000], "truncated"),
    ("180 Mpx header", lambda: _png_header(18000, 10000), "megapixels"),
    ("50 Mpx header", lambda: _png_header(8000, 6250), "megapixels"),
    ("11 MB", lambda: b"\0" * (11 * 2**20), "under 10 MB"),
    ("9 MB junk", lambda: b"\0" * (9 * 2**20), "PNG or JPEG"),
    ("empty", lambda: b"", "empty"),
    ("4x4", lambda: _png(np.zeros((4, 4, 3), np.uint8)), "at least 16"),
    ("wide 5:1", lambda: _png(np.zeros((40, 200, 3), np.uint8)), (40, 80, 3)),
]


@pytest.mark.parametrize("name, make, expected", UPLOADS, ids=[u[0] for u in UPLOADS])
def test_uploads_are_read_shrunk_or_refused_with_a_message(name, make, expected):
    data = make()
    if isinstance(expected, tuple):
        img = read_user_image(data)
        assert img.shape == expected and img.dtype == np.uint8
        if name == "9 MB PNG":
            assert 8.5 * 2**20 < len(data) < 10 * 2**20
    else:
        with pytest.raises(ImageRejected, match=expected):
            read_user_image(data)


# -- checkpoints ------------------------------------------------------------------------------------------
def _x(*shape):
    return torch.zeros(1).expand(*shape)  # saved as one number: a file of a few KB that declares any shape


def _tiny_state():
    torch.manual_seed(0)
    return VisionTransformer(64, 16, 3, 128, 2, 2).state_dict()


def _huge_state():
    s = {"cls_token": _x(1, 1, 4096), "pos_embed": _x(1, 197, 4096), "patch_embed.proj.weight": _x(4096, 3, 16, 16),
         "norm.weight": _x(4096)}
    s.update({f"blocks.{i}.mlp.fc1.weight": _x(16384, 4096) for i in (0, 999)})
    return s


def _tiny_shapes():
    """The tiny ViT's names and shapes, each tensor stored as one number."""
    return {k: _x(*v.shape) for k, v in _tiny_state().items()}


def _deep_state():
    s = {k: v for k, v in _tiny_shapes().items() if not k.startswith("blocks.1.")}
    s["blocks.999.norm1.weight"] = _x(128)
    return s


CHECKPOINTS = [
    ("wrong keys", lambda: {"weight": torch.zeros(3)}, "not a ViT"),
    ("non-tensors", lambda: {**_tiny_state(), "cls_token": [0.0] * 128}, "not tensors"),
    ("non-text keys", lambda: {**_tiny_state(), 7: torch.zeros(1)}, "non-text keys"),
    ("huge width", _huge_state, "width 4096"),
    ("1000 blocks", _deep_state, "more than 24 blocks"),
    ("huge position grid", lambda: {**_tiny_shapes(), "pos_embed": _x(1, 1 + 1000**2, 128)}, "pos_embed"),
    ("wrong shape", lambda: {**_tiny_state(), "blocks.1.attn.qkv.weight": torch.zeros(5, 5)}, "does not match"),
    ("1-D weight", lambda: {**_tiny_state(), "patch_embed.proj.weight": torch.zeros(128)}, "dimensions"),
    ("a list", lambda: [torch.zeros(2)], "holds a list"),
    ("a tensor", lambda: torch.zeros(3), "holds a Tensor"),
]


@pytest.mark.parametrize("name, make, match", CHECKPOINTS, ids=[c[0] for c in CHECKPOINTS])
def test_bad_checkpoints_are_refused_before_building_a_model(tmp_path, monkeypatch, name, make, match):
    path = tmp_path / "c.pth"
    torch.save(make(), path)
    if name in ("huge width", "1000 blocks", "huge position grid"):
        assert path.stat().st_size < 20_000  # a small file...
        # ...whose declared size is refused from the shapes alone: building any model here is a failure.
        monkeypatch.setattr(vit_module, "VisionTransformer", lambda *a, **k: pytest.fail("built a model"))
    with pytest.raises(CheckpointError, match=match):
        load_dino_checkpoint(path)


def test_corrupt_and_truncated_checkpoint_files(tmp_path):
    path = tmp_path / "good.pth"
    torch.save(_tiny_state(), path)
    assert len(load_dino_checkpoint(path).blocks) == 2
    data = path.read_bytes()
    for name, bad in [("truncated", data[: len(data) // 2]), ("corrupt", data[:100] + b"\0" * 1000 + data[1100:]),
                      ("text", b"not a torch file")]:
        (tmp_path / f"{name}.pth").write_bytes(bad)
        with pytest.raises(CheckpointError, match="Could not read"):
            load_dino_checkpoint(tmp_path / f"{name}.pth")


@pytest.mark.parametrize("args", [(224, 16, 3, 384, 12, 6), (224, 8, 3, 384, 12, 6), (224, 16, 3, 768, 12, 12)],
                         ids=["ViT-S/16", "ViT-S/8", "ViT-B/16"])
def test_official_sizes_are_within_the_bounds(args):
    with torch.device("meta"):  # shapes only
        state = VisionTransformer(*args).state_dict()
    size = declared_vit_size(state)
    assert (size["img_size"], size["patch_size"], size["embed_dim"], size["depth"], size["num_heads"]) == (
        args[0], args[1], args[3], args[4], args[5])


def test_checkpoints_are_listed_from_the_weights_folder_only(tmp_path, monkeypatch):
    (tmp_path / "b.pth").write_bytes(b"x")
    (tmp_path / "a.pt").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.pth").mkdir()
    monkeypatch.setenv("DLVIZ_WEIGHTS", str(tmp_path))
    assert vit_module.weights_dir() == tmp_path
    assert [p.name for p in vit_module.list_checkpoints()] == ["a.pt", "b.pth"]
    monkeypatch.setenv("DLVIZ_WEIGHTS", str(tmp_path / "missing"))
    assert vit_module.list_checkpoints() == []
    monkeypatch.delenv("DLVIZ_WEIGHTS")
    monkeypatch.setenv("DLVIZ_DATA", str(tmp_path / "typed-in-the-sidebar"))  # does not move the weights folder
    assert vit_module.weights_dir().name == "weights" and "typed-in-the-sidebar" not in str(vit_module.weights_dir())


# -- dataset files ----------------------------------------------------------------------------------------
def _idx(arr, magic: int | None = None) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    magic = (0x08 << 8) | arr.ndim if magic is None else magic
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


_IMAGES = np.random.default_rng(0).integers(0, 256, (20, 28, 28))
_LABELS = np.arange(20) % 10
GOOD_MNIST = {"train-images-idx3-ubyte": _idx(_IMAGES), "train-labels-idx1-ubyte": _idx(_LABELS),
              "t10k-images-idx3-ubyte": _idx(_IMAGES[:10]), "t10k-labels-idx1-ubyte": _idx(_LABELS[:10])}
MNIST_FILES = [
    ("good", {}, None),
    ("truncated images", {"train-images-idx3-ubyte": _idx(_IMAGES)[:1000]}, "could not be read"),
    ("wrong magic", {"train-images-idx3-ubyte": b"\0\0\x07\x03" + _idx(_IMAGES)[4:]}, "AssertionError"),
    ("empty labels", {"t10k-labels-idx1-ubyte": b""}, "could not be read"),
    ("labels out of range", {"train-labels-idx1-ubyte": _idx(_LABELS + 20)}, "labels outside 0-9"),
    ("fewer labels", {"train-labels-idx1-ubyte": _idx(_LABELS[:5])}, "5 labels"),
    ("text file", {"train-images-idx3-ubyte": b"hello, not an idx file"}, "could not be read"),
]


@pytest.mark.parametrize("name, files, match", MNIST_FILES, ids=[m[0] for m in MNIST_FILES])
def test_bad_dataset_files_are_dataset_missing(tmp_path, monkeypatch, name, files, match):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for fname, data in {**GOOD_MNIST, **files}.items():
        (raw / fname).write_bytes(data)
    monkeypatch.setenv("DLVIZ_DATA", str(tmp_path))
    if match is None:
        data = load_image_dataset("mnist", 8)
        assert data.x_train.shape == (20, 1, 8, 8) and sorted(data.y_test.tolist()) == list(range(10))
    else:
        with pytest.raises(DatasetMissing, match=match):
            load_image_dataset("mnist", 8)


# -- link values shown as text ----------------------------------------------------------------------------
def _unescaped(md: str) -> str:
    """What markdown would see after removing backslash escapes (escaped characters are literal text)."""
    return re.sub(r"\\.", "", md)


def _assert_escaped(at, marker: str) -> None:
    """Every markdown element that shows ``marker`` shows it as text: no image, link or HTML from it."""
    kinds = ("markdown", "caption", "warning", "error", "info", "success", "exception")
    for el in (e for kind in kinds for e in at.get(kind)):
        body = getattr(el, "value", None) or getattr(el, "message", "")
        if marker in re.sub(r"\\(.)", r"\1", body):
            bare = _unescaped(body)
            assert not re.search(r"!\[|\]\(|\[|<", bare), body
            literal = re.sub(r"\\(.)", r"\1", body)
            assert not re.search(r"(?i)(https?|ftp):|www\.", literal), body  # no GFM autolink either


def test_plain_escapes_markdown_and_keeps_the_text():
    for text in ["![](http://example.invalid/p.png)", "[link](http://x)", "<img src=x>", "$x$ :red[a] **b**",
                 "a\nb"]:
        out = plain(text)
        assert not re.search(r"[!\[\]()<>$*:]", _unescaped(out))
        literal = re.sub(r"\\(.)", r"\1", out)
        assert literal.replace("\u2060", "") == text.replace("\n", " ")
        assert not re.search(r"(?i)(https?|ftp):|www\.|\w@", literal)  # no GFM autolink can start
    assert plain("write to a@b.org or www.x.org") .count("\u2060") == 2


LINK_VALUES = ["![](http://example.invalid/p.png)", "[link](http://example.invalid)", "nan", "1e308", "9" * 5000]


@pytest.mark.parametrize("value", LINK_VALUES, ids=["image", "link", "nan", "1e308", "5000 digits"])
def test_link_values_end_in_an_ignored_message_shown_as_text(value):
    at = open_page("pages/10_cnn.py", query={"lr": value, "epochs": value})
    assert not at.exception, [e.message for e in at.exception]
    ignored = [w.value for w in at.warning if "Ignored a setting from the link" in w.value]
    assert len(ignored) == 2 and any("lr" in w for w in ignored) and any("epochs" in w for w in ignored), ignored
    config = at.session_state["cnn._config"]
    assert (config.lr, config.epochs) == (0.01, 10)  # the defaults, not the link's values
    shown = re.sub(r"\\(.)", r"\1", ignored[0]).replace("\u2060", "")  # word joiners stop GFM's autolinks
    assert value[:40] in shown  # the value is shown (as text, shortened)...
    assert len(ignored[0]) < 400  # ...in one short line, even for 5,000 digits
    _assert_escaped(at, "example.invalid")


def test_formula_from_a_link_with_markdown_is_shown_as_text():
    formula = "x + [y](http://example.invalid) ![](http://example.invalid/p)"
    at = open_page("pages/20_loss_surfaces.py",
                   query={"surface": "custom", "formula": formula, "lr": "<img src=http://example.invalid/p.png>"})
    assert not at.exception, [e.message for e in at.exception]
    assert any("The formula cannot be read" in e.value for e in at.error)
    assert any("Ignored a setting from the link" in w.value for w in at.warning)
    _assert_escaped(at, "example.invalid")
    _assert_escaped(at, "img src")


def test_server_config_is_safe_and_matches_the_page():
    import tomllib

    from conftest import ROOT

    from dlviz.data.uploads import MAX_UPLOAD_MB

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["maxUploadSize"] == MAX_UPLOAD_MB  # the limit the DINO page states
    assert cfg["server"]["address"] == "localhost"
    assert cfg["client"]["showErrorDetails"] == "type"  # the error type, never a traceback, in the browser
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["runner"]["postScriptGC"] is False
