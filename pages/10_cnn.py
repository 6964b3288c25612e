"""CNN (LeNet) on digits
icon: 🧮
LeNet trains live: loss and accuracy, its filters and feature maps, a confusion matrix and what its features learn.
"""

import streamlit as st

from dlviz.analysis.embedding import pca, tsne
from dlviz.data import DatasetMissing, load_image_dataset
from dlviz.data.digits import download_torchvision
from dlviz.demos import get_demo
from dlviz.demos.cnn import GRAD_LAYERS, N_PROBE, STAT_LAYERS, UPDATE_RULES, layer_table, probe
from dlviz.figures.cnn import confusion_figure, feature_maps_figure, misclassified_figure
from dlviz.figures.common import embedding_scatter, image_grid, metric_curves
from dlviz.models.lenet import shapes as lenet_shapes
from dlviz.ui import config_form, current_device, explain, live_chart, live_run, metric_row, plain, shared_view, show
from dlviz.ui.show import md_table
from dlviz.ui.controls import linked_view
from dlviz.ui.compute import queued
from dlviz.ui.feature_sources import FeatureSource, publish
from dlviz.ui.topics import require_app
from dlviz.i18n import N_, _, tr

require_app(__file__)

KEY = "cnn"
demo = get_demo("cnn")
st.title(_("CNN: LeNet learns to read digits"))
stage = st.container()  # figure first: the buttons and the live curves, above the controls
config = config_form(demo, KEY)
try:  # the figures of a run read that run's own data (run_data); this checks the widgets' choice
    load_image_dataset(config.dataset, config.input_size)
except DatasetMissing as exc:
    st.error(plain(tr(exc.args[0])), icon="📂")  # the folder is typed in the sidebar; a Msg, shown translated
    if st.button(_("Try downloading {dataset} now (needs internet)").format(dataset=config.dataset), key=f"{KEY}.download"):
        try:
            with st.spinner(_("Downloading...")):
                st.success(plain(_("Saved under {download_torchvision}. Press Reset to use it.").format(
                                     download_torchvision=download_torchvision(config.dataset))))
        except DatasetMissing as fail:
            st.error(plain(tr(fail.args[0])), icon="📡")
    st.stop()

rows = lenet_shapes(config.input_size, config.activation, config.pool)
explain(
    _("LeNet (LeCun et al., 1998) stacks two **convolution + pooling** blocks and three fully connected "
      "layers. A convolution slides the same small filter over the image, so it needs few weights and "
      "responds to a pattern wherever it appears; pooling halves the resolution. Training minimizes the "
      "cross-entropy of mini-batches; with g its gradient, the selected optimizer ({optimizer}) updates "
      "the weights by:").format(optimizer=config.optimizer),
    r"\mathcal{L}(\theta) = -\frac{1}{B}\sum_{i=1}^{B} \log \frac{e^{z_{y_i}}}{\sum_{c} e^{z_c}},\qquad "
    r"g = \nabla_\theta \mathcal{L}",
    UPDATE_RULES[config.optimizer],
    claim=_("ReLU + max pooling + Adam learn within a second. 'The 1998 recipe' (sigmoid, average pooling, SGD) is "
          "d2l's simplification of LeCun et al. 1998, which used a scaled tanh, trainable subsampling, a sparsely "
          "connected C3 and RBF outputs. It sits at chance for about two thousand steps or more, but the sigmoids "
          "do not start saturated: see the layer statistics below the curves."),
)
with st.expander(_("Layer shapes (from a real forward pass)")):
    md_table([{_("layer"): name, _("output shape (C, H, W)"): " x ".join(map(str, shape)), _("parameters"): f"{n:,}"}
              for name, shape, n in rows], align="llr")


def draw(runner) -> None:
    snap = runner.latest
    if snap is None:
        return
    m = snap.metrics
    metric_row({_("test accuracy"): f"{m['test_acc']:.1%}", _("test loss"): f"{m['test_loss']:.3f}",
                _("epoch"): f"{m['epoch']:.1f} / {runner.config.epochs}", _("steps / s"): f"{m['steps_per_second']:.0f}"})
    # Built once per snapshot for every session watching this run (shared_view), drawn by each.
    live_chart(runner, "curves", lambda r: metric_curves(
        r.history, [(_("loss (cross-entropy)"), ["train_loss", "test_loss"]), (_("accuracy"), ["train_acc", "test_acc"])]),
        f"{KEY}.curves")


def run_data(runner):
    """The test set of the run on screen, which the widgets may no longer describe (changed mid-run)."""
    try:
        return load_image_dataset(runner.config.dataset, runner.config.input_size)  # cached by the loader
    except DatasetMissing as exc:  # the data folder changed in the sidebar since the run started
        st.warning(plain(_("The data of this run is no longer available ({exc}) Press Reset.").format(exc=tr(exc.args[0]))), icon="📂")
        return None


def draw_layers(runner) -> None:
    """Per-layer activation statistics and gradient norms of the run (the demo measures them every snapshot)."""
    snap, first = runner.latest, runner.first
    if "grad_conv1" not in snap.metrics:
        return
    with st.expander(_("Activations and gradients per layer"), expanded=runner.config.activation == "sigmoid"):
        md_table(layer_table(first.metrics, snap.metrics))
        show(shared_view(runner, "layers", lambda: metric_curves(
            runner.history, [(_("‖∂L/∂W‖ per layer"), [f"grad_{k}" for k in GRAD_LAYERS]),
                             (_("mean slope f'(z)"), [f"slope_{k}" for k in STAT_LAYERS]),
                             (_("mean pre-activation z"), [f"pre_mean_{k}" for k in STAT_LAYERS])],
            log_y=[True, False, False], height=280)), key=f"{KEY}.layers")
        st.caption(_("On {N_PROBE} fixed training images. With sigmoids and PyTorch's default initialization the "
                     "pre-activations start with a std near 0.3: the units sit in their linear range (slope near the "
                     "maximum 1/4), not saturated. Two things still slow training: each sigmoid layer scales the backward "
                     "signal by its slope (≤ 1/4), so conv1's gradient starts thousands of times smaller than fc3's; and "
                     "its outputs are all positive (mean near 1/2), so one SGD step moves every incoming weight of a unit "
                     "the same way. In the 1998 preset (lr 2) ten steps shift fc2's pre-activations to about −5: that "
                     "layer then is saturated (|z| > 3, slope near 0) for thousands of steps. With ReLU, mean f'(z) is "
                     "the share of active units.").format(N_PROBE=N_PROBE))


def draw_insides(runner) -> None:
    snap, first = runner.latest, runner.first
    if snap is not None:
        draw_layers(runner)
    data = run_data(runner) if snap is not None else None
    if data is None:
        return
    left, right = st.columns(2)
    with left:
        show(shared_view(runner, "filters", lambda: image_grid(
            snap.arrays["filters"], [_("filter {i}").format(i=i) for i in range(6)], ncols=6, symmetric=True,
            title=_("First-layer filters (5x5; red +, blue -)"), tile_px=120)), key=f"{KEY}.filters")
        linked_view(f"{KEY}.digit", "digit", int, lo=0, hi=len(data.y_test) - 1, default=0)
        idx = st.slider(_("Test digit for the feature maps"), 0, len(data.y_test) - 1, key=f"{KEY}.digit")
        img = data.x_test[idx:idx + 1]
        out = shared_view(runner, "probe", lambda: probe(runner.config, snap.arrays["state"], img), idx)
        st.caption(_("True label **{value}**, predicted **{value2}** ({max:.0%})").format(
                       value=data.classes[int(data.y_test[idx])],
                       value2=data.classes[int(out['probs'][0].argmax())],
                       max=out['probs'][0].max()))
    with right:
        show(shared_view(runner, "confusion", lambda: confusion_figure(snap.arrays["confusion"], data.classes)),
             key=f"{KEY}.confusion")
    show(shared_view(runner, "input", lambda: image_grid(img[:, 0].numpy(), ["input"], ncols=1, tile_px=140), idx),
         key=f"{KEY}.input")
    for layer in ("conv1", "conv2"):
        show(shared_view(runner, layer, lambda layer=layer: feature_maps_figure(out[layer][0], layer), idx),
             key=f"{KEY}.{layer}")
    wrong = shared_view(runner, "wrong", lambda: misclassified_figure(
        data.x_test[:, 0].numpy(), data.y_test.numpy(), snap.arrays["test_pred"], data.classes))
    if wrong is not None:
        show(wrong, key=f"{KEY}.wrong")
    draw_features(runner, first, snap, data)


def draw_features(runner, first, snap, data) -> None:
    st.subheader(_("What the 84 penultimate features learned"))
    if snap.step > 0:  # the feature explorer lists it
        publish(FeatureSource(N_("CNN (LeNet): 84-d penultimate layer"), KEY, snap.step,
                              dict(vars(runner.config)), snap.arrays["features"], data.y_test.numpy(),
                              data.x_test[:, 0].numpy(), data.classes))
    linked_view(f"{KEY}.proj", "proj", choices=("PCA", "t-SNE"))
    method = st.radio(_("Projection"), [N_("PCA"), N_("t-SNE")], horizontal=True, key=f"{KEY}.proj",
                      help=_("PCA is instant and redrawn live; t-SNE takes a second and is computed for the "
                           "current step when you press the button."), format_func=_)
    labels = data.y_test.numpy()

    def hover():  # per snapshot (the predictions change), for every session that draws this run
        text = _("test #{i}: true {label}, predicted {pred}")
        return shared_view(runner, "hover", lambda: [
            text.format(i=i, label=data.classes[labels[i]], pred=data.classes[snap.arrays['test_pred'][i]])
            for i in range(len(labels))])

    def scatter(coords, title):
        return embedding_scatter(coords, labels, title, hover(), data.classes)

    ss = st.session_state
    if method == "t-SNE":
        cache = ss.get(f"{KEY}.tsne")
        if st.button(_("Compute t-SNE at this step"), key=f"{KEY}.tsne_go"):
            seed = runner.config.seed
            cache = (runner.token, snap.step, *queued(_("t-SNE of the test features"), lambda: (
                tsne(first.arrays["features"], seed=seed), tsne(snap.arrays["features"], seed=seed))))
            ss[f"{KEY}.tsne"] = cache
        if cache is None or cache[0] is not runner.token:  # the run's token, not an id(): ids are reused
            st.info(_("Press the button to embed the features before training and at the current step."))
            return
        step = cache[1]
        before = scatter(cache[2], _("{method} before training").format(method=method))
        after = scatter(cache[3], _("{method} at step {step}").format(method=method, step=step))
    else:  # PCA: redrawn live, built once per snapshot for every session watching the run
        before = shared_view(runner, "pca0", lambda: scatter(
            pca(first.arrays["features"])[0], _("{method} before training").format(method=method)))
        after = shared_view(runner, "pca1", lambda: scatter(
            pca(snap.arrays["features"])[0], _("{method} at step {step}").format(method=method, step=snap.step)))
    left, right = st.columns(2)
    with left:
        show(before, key=f"{KEY}.emb0")
    with right:
        event = show(after, key=f"{KEY}.emb1", on_select="rerun", selection_mode=("points", "box", "lasso"))
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    # A selection made on an earlier run's plot can name points this run's (smaller) test set does not have.
    chosen = [int(p["customdata"]) for p in points if "customdata" in p and int(p["customdata"]) < len(labels)][:16]
    if chosen:
        show(image_grid(data.x_test[chosen, 0].numpy(),
                        [_("#{i} true {label}").format(i=i, label=data.classes[labels[i]]) for i in chosen], ncols=8, tile_px=90,
                        title=_("Selected digits")), key=f"{KEY}.chosen")
    else:
        st.caption(_("Select points (click, box or lasso) in the right plot to see their digits."))


live_run(KEY, demo, config, current_device(), draw, draw_slow=draw_insides, stage=stage, views=st.container())
