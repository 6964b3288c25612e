"""AppTest of the feature explorer: built-in sources, a source published in the session, PCA and live t-SNE."""

import numpy as np
from conftest import open_page, wait_for

from dlviz.ui.feature_sources import FeatureSource

PAGE = "pages/90_features.py"
REGISTRY = "dlviz.feature_sources"


def _no_exception(at):
    assert not at.exception, [e.message for e in at.exception]


def _fake(n=150, name="Fake model: 16-d features", nan=False):
    """Two well-separated label groups in 16-d, as a page would publish them."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    feats = rng.normal(size=(n, 16)).astype(np.float32) + 6.0 * labels[:, None]
    if nan:
        feats[0, 0] = np.nan
    return FeatureSource(name=name, page="fake", step=42, config={"lr": 0.01}, features=feats, labels=labels,
                         images=rng.random((n, 8, 8)).astype(np.float32), class_names=("a", "b", "c"))


def _with_source(source):
    at = open_page()
    at.session_state[REGISTRY] = {source.name: source}
    at.switch_page(PAGE)
    at.run()
    return at


def _metric(at, label):
    return next(m.value for m in at.metric if m.label.startswith(label))


def test_defaults_pca_of_pixels():
    at = open_page(PAGE)
    _no_exception(at)
    assert at.radio(key="features.method").value == "PCA"
    assert float(_metric(at, "5-NN accuracy, original").rstrip("%")) > 95  # raw pixels: a strong baseline
    assert 0.5 < float(_metric(at, "trustworthiness")) < 0.95  # a 2-D PCA of 64-d pixels loses neighbours
    assert len(at.get("download_button")) == 1
    at.select_slider(key="features.n_components").set_value(3).run()
    at.number_input(key="features.point").set_value(10).run()
    _no_exception(at)
    assert any("#10" in m.value for m in at.markdown)


def test_published_source_is_listed_and_tsne_runs_live():
    at = _with_source(_fake())
    source = "session:Fake model: 16-d features"
    assert "Fake model: 16-d features · step 42" in at.selectbox(key="features.source").options
    at.selectbox(key="features.source").set_value(source).run()
    _no_exception(at)
    assert any("150 examples" in c.value and "step 42" in c.value for c in at.caption)
    # Separated groups: PCA keeps them apart, so the embedding's 5-NN accuracy is perfect.
    assert _metric(at, "5-NN accuracy, embedding") == "100.0%"
    trust_pca = float(_metric(at, "trustworthiness"))
    at.radio(key="features.method").set_value("t-SNE").run()
    at.slider(key="features.iterations").set_value(400).run()
    at.button(key="features.play").click().run()
    wait_for(at, "features", lambda r: r.finished, 180)
    _no_exception(at)
    runner = at.session_state["features._runner"]
    assert runner.status == "done" and runner.latest.step == 400
    assert float(_metric(at, "trustworthiness")) > trust_pca  # t-SNE keeps neighbourhoods a 2-D PCA loses
    at.button(key="features.grid_go").click().run()
    _no_exception(at)
    assert at.session_state["features._grid"][2][0].shape == (150, 2)


def test_nan_source_is_a_message_not_a_traceback():
    at = _with_source(_fake(nan=True, name="Diverged model"))
    at.selectbox(key="features.source").set_value("session:Diverged model").run()
    _no_exception(at)
    assert any("NaN" in e.value and "retrain" in e.value for e in at.error)


def test_random_network_source_and_presets():
    at = open_page(PAGE)
    at.selectbox(key="features.source").set_value("random").run()
    _no_exception(at)
    assert any("84 dimensions" in c.value for c in at.caption)
    at.selectbox(key="features.preset").set_value("tiny-perplexity").run()
    _no_exception(at)
    assert at.slider(key="features.perplexity").value == 5.0


def test_the_scatter_legend_fits_its_plot_in_lecture_mode():
    """Ten classes and the two selection markers in a column, with its title, fit the plot's height on the
    projector (at 330 px the last classes were cut)."""
    import json

    from dlviz.figures.common import LECTURE, _legend_names, row_px

    at = open_page(PAGE, query={"lecture": "1"})
    _no_exception(at)
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if '"legend"' in c.proto.spec
                and '"selected' in c.proto.spec)
    layout = spec["layout"]
    names = _legend_names(spec["data"], layout)
    assert len(names) == 12  # ten digit classes, the neighbours, the selected example
    plot_px = layout["height"] - layout["margin"]["t"] - layout["margin"]["b"]
    assert (len(names) + 1) * row_px(LECTURE.legend) <= plot_px, (plot_px, len(names))
