"""Self-supervised learning: collapse or not
icon: 🪞
SimSiam, BYOL, SimCLR, MoCo and InstDisc train live on digits: collapse or not, and where negatives come from.
"""

import dataclasses

import numpy as np
import streamlit as st
import torch

from dlviz.analysis.embedding import tsne
from dlviz.data import DatasetMissing
from dlviz.data.augment import two_views
from dlviz.demos import get_demo
from dlviz.demos.ssl import CONTRASTIVE, compare_warning, load_data, queue_sweep, run_label, variant
from dlviz.figures.common import embedding_scatter
from dlviz.figures.ssl import (negatives_figure, pairs_figure, pca_figure, queue_sweep_figure, spectrum_figure,
                               ssl_curves)
from dlviz.ui import config_form, current_device, explain, lecture_mode, live_chart, live_run, plain, show
from dlviz.ui.compute import queued
from dlviz.ui.feature_sources import FeatureSource, publish
from dlviz.ui.topics import require_app
from dlviz.i18n import N_, Msg, _, tr

require_app(__file__)

KEY = "ssl"
demo = get_demo("ssl")
st.title(_("Self-supervised learning: collapse or not"))
stage = st.container()  # figure first: buttons and the live view above the controls
config = config_form(demo, KEY)
try:
    data = load_data(config)
except DatasetMissing as exc:
    st.error(plain(tr(exc.args[0] if exc.args else str(exc))), icon="📂")  # the folder is typed in the sidebar
    st.stop()



def run_labels(cfg) -> list[str]:
    """Legend names of a run's models (in the reader's language): one, or two when it compares."""
    return [tr(run_label(cfg))] + ([tr(run_label(variant(cfg)))] if cfg.compare != "none" else [])


note = compare_warning(config)
if note is not None:
    st.warning(plain(tr(note)), icon="⚖️")

explain(
    _("Two random **views** of the same image (crop, shift, rotation, jitter, noise, cutout) should get similar "
    "embeddings. With positives alone, a network that outputs one constant vector reaches the best possible "
    "loss: **collapse**. SimCLR prevents it with *negatives* (the other images of the batch); SimSiam with a "
    "**stop-gradient** on one branch plus a **predictor** $h$; BYOL with a predictor and a slowly moving "
    "**momentum (EMA) target**. As in their code, SimSiam and BYOL pass each view through the network as its "
    "own batch (BatchNorm statistics per view), while SimCLR encodes both views as one batch of 2N. SimSiam's "
    "loss is the negative cosine similarity (best value $-1$). "
    "**MoCo** keeps the negatives in a FIFO **queue** of the last $K$ keys, made by a **key encoder** that "
    "follows the query encoder by momentum $m$, so the queue's keys stay consistent with each other; **InstDisc** "
    "keeps one feature per training image in a **memory bank**, refreshed only when that image comes round again "
    "(each step draws $K$ bank entries, shared by the batch, as negatives of an InfoNCE loss; the paper's NCE "
    "approximation is not used). MoCo's Shuffle BN is reproduced on 4 virtual devices: without it the query "
    "batch and its keys share BatchNorm statistics, and the network matches that batch signature instead of the "
    "image. MoCo v2 adds an MLP head (v1: linear), stronger jitter and random blur. The stored negatives' "
    "*consistency* is the cosine between a stored key (or bank entry) and what the network that made it gives now "
    "for the same view:"),
    r"\mathcal{D}(p, z) = -\frac{p}{\lVert p\rVert_2}\cdot\frac{z}{\lVert z\rVert_2},\qquad "
    r"\mathcal{L}_{\text{SimSiam}} = \tfrac12\,\mathcal{D}\big(p_1, \operatorname{sg}(z_2)\big) "
    r"+ \tfrac12\,\mathcal{D}\big(p_2, \operatorname{sg}(z_1)\big)",
    r"\text{BYOL: } \mathcal{L} = \tfrac12\mathcal{D}(p_1, \bar z_2) + \tfrac12\mathcal{D}(p_2, \bar z_1),\quad "
    r"\bar\theta \leftarrow m\,\bar\theta + (1-m)\,\theta \quad"
    r"\Big(\textstyle\big\lVert \tfrac{p}{\lVert p\rVert} - \tfrac{\bar z}{\lVert \bar z\rVert}\big\rVert^2 "
    r"= 2 + 2\,\mathcal{D}(p, \bar z)\Big)",
    r"\text{SimCLR: } \ell_i = -\log \frac{\exp(\cos(z_i, z_{i^+})/\tau)}"
    r"{\sum_{k \ne i} \exp(\cos(z_i, z_k)/\tau)}",
    r"(2N \text{ views: one positive and } 2(N-1) \text{ negatives each; the temperature } \tau "
    r"\text{ divides the logits})",
    r"\text{MoCo: } \ell = -\log\frac{\exp(q\cdot k_+/\tau)}{\exp(q\cdot k_+/\tau) + \sum_{j=1}^{K}"
    r"\exp(q\cdot n_j/\tau)},\quad \theta_k \leftarrow m\,\theta_k + (1-m)\,\theta_q",
    r"(q = f_q(\text{view}_1),\ k_+ = f_k(\text{view}_2) \text{ without gradient, } n_j \text{: the queue of the "
    r"last } K \text{ keys; enqueue } k_+\text{, dequeue the oldest})",
    r"\text{InstDisc: } \ell = -\log\frac{\exp(f_i\cdot v_i/\tau)}{\exp(f_i\cdot v_i/\tau) + "
    r"\sum_{j \in S} \exp(f_i\cdot v_j/\tau)} + \lambda\lVert f_i - v_i\rVert^2,\quad "
    r"v_i \leftarrow \frac{m v_i + (1-m) f_i}{\lVert m v_i + (1-m) f_i\rVert}",
    r"\text{collapse metric: } \operatorname{std}\Big(\frac{z}{\lVert z\rVert_2}\Big) \approx "
    r"\frac{1}{\sqrt d} \text{ (spread out)}\quad\text{vs.}\quad 0 \text{ (collapsed)}",
    claim=_("Without the stop-gradient SimSiam collapses within about a hundred steps: the loss reaches -1 while "
          "the output std drops toward 0 and the encoder's kNN accuracy falls below the random encoder's (at this "
          "toy scale it stays well above chance). With it, the std stays near 1/√d. On plain digits a random "
          "encoder and raw pixels already score about 95%, so kNN gains are small there. "
          "The std is measured on the test digits with BatchNorm in batch-statistics mode (as in training) and "
          "before any output BatchNorm, which would otherwise pin each dimension's variance and hide a collapse."),
)

with st.expander(_("What are the positives? Augmented pairs"), expanded=False):
    if st.button(_("New random views"), key=f"{KEY}.reroll"):
        st.session_state[f"{KEY}.views_seed"] = st.session_state.get(f"{KEY}.views_seed", 0) + 1
    g = torch.Generator().manual_seed(config.seed * 1000 + st.session_state.get(f"{KEY}.views_seed", 0))
    sample = data.x_train[:10]
    v1, v2 = two_views(sample, config.augment, g)
    show(pairs_figure(sample[:, 0].numpy(), v1[:, 0].numpy(), v2[:, 0].numpy()), key=f"{KEY}.pairs")
    st.caption(_("Every view draws its own crop, shift, rotation, jitter, noise and cutout (one batched affine "
               "grid per batch). The controls under 'Controls' set their strength."))


def metric_row(m: dict, pre: str, label: str, out_dim: int) -> None:
    c = st.columns([1.5, 1, 1.15, 1.1, 1])  # the metric labels fit at 1280 px in lecture mode, in Chinese too
    c[0].markdown(f"**{label}**")
    if pre + "loss" in m:
        c[1].metric(_("loss"), f"{m[pre + 'loss']:.3f}")
    c[2].metric(_("kNN acc."), f"{m[pre + 'knn_acc']:.1%}",
                delta=_("{delta:+.1%} vs init").format(delta=m[pre + 'knn_acc'] - m['knn_acc_random_encoder']),
                help=_("Weighted cosine kNN (k = 20) on the test digits; the delta is against the same encoder, "
                     "untrained."))
    ratio = m[pre + "output_std"] / m["output_std_ref"]
    c[3].metric(_("std × √d"), f"{ratio:.2f}",
                help=_("The output's std × √d: 1 = spread like a Gaussian on the sphere, 0 = collapsed"))
    if pre + "spread_rank" in m:
        c[4].metric(_("rank × var"), f"{m[pre + 'spread_rank']:.1f}/{out_dim}",
                    help=_("The effective rank of z/‖z‖ times its total variance (at most 1 on the unit sphere): "
                           "the plain effective rank ignores scale, so a collapse with isotropic residual noise "
                           "would score high (here {rank:.1f}); weighted by its variance it scores 0.").format(
                               rank=m[pre + 'effective_rank']))


def draw(runner) -> None:
    # Everything here describes the run on screen (runner.config), not the widgets: they may have changed since.
    snap, cfg = runner.latest, runner.config
    if snap is None:
        return
    try:
        data = load_data(cfg)  # cached
    except DatasetMissing as exc:  # the data folder changed in the sidebar since the run started
        st.warning(plain(_("The data of this run is no longer available ({exc}) Press Reset.").format(
            exc=tr(exc.args[0] if exc.args else str(exc)))), icon="📂")
        return
    m, labels = snap.metrics, run_labels(cfg)
    pres = ["", "b_"][:len(labels)]
    for pre, label in zip(pres, labels):
        metric_row(m, pre, label, cfg.out_dim)
    # Every live figure is built once per snapshot for all the sessions watching the run (shared_view).
    live_chart(runner, "curves", lambda r: ssl_curves(r.history, labels, r.latest.metrics["output_std_ref"],
                                                      r.latest.metrics["knn_acc_random_encoder"],
                                                      r.latest.metrics["knn_acc_pixels"],
                                                      height=290 if lecture_mode() else 330), f"{KEY}.curves")
    st.caption(_("Baselines on the same test set (weighted cosine kNN, k=20): random-initialized encoder "
                 "**{knn_acc_random_encoder:.1%}**, raw pixels **{knn_acc_pixels:.1%}**.").format(
                   knn_acc_random_encoder=m['knn_acc_random_encoder'],
                   knn_acc_pixels=m['knn_acc_pixels'])
               + (" " + _("{method}: {n} negatives per query.").format(method=labels[0].split(',')[0],
                                                                          n=int(m['negatives']))
                  if cfg.method in CONTRASTIVE else ""))
    if "neg_age" in m or "b_neg_age" in m:
        live_chart(runner, "negatives", lambda r: negatives_figure(r.history, labels), f"{KEY}.negatives")
        parts = [_("{run}: negatives {age:.1f} steps old on average (oldest {oldest:.0f}), consistency "
                   "{consistency:.2f}").format(run=lab, age=m[p + 'neg_age'], oldest=m[p + 'neg_age_max'],
                                               consistency=m[p + 'neg_consistency'])
                 for p, lab in zip(pres, labels) if p + "neg_age" in m]
        st.caption(_("{runs}. A queue of K keys at batch N spans K/N steps; a bank entry waits a whole epoch "
                     "({steps:.0f} steps here; on ImageNet about 5,000) for its image to come round again, and its "
                     "encoder has moved since.").format(runs="; ".join(parts),
                                                          steps=len(data.x_train) / cfg.batch_size))
    y = data.y_test.numpy()
    cols = st.columns(2)

    def pca_panel(r, i: int):  # panel i of the snapshot it is given (the live feed gives newer ones)
        snap = r.latest
        if len(labels) == 2:
            coords = snap.arrays[["pca", "b_pca"][i]]
            title = _("{name} · step {step}").format(name=labels[i], step=snap.step)
        elif i == 0:
            coords, title = r.first.arrays["pca"], _("before training (step 0)")
        else:
            coords, title = snap.arrays["pca"], _("step {step}").format(step=snap.step)
        return pca_figure(coords, y, _("PCA of z/‖z‖: {title}").format(title=title), data.classes)

    for i, col in enumerate(cols):
        with col:
            live_chart(runner, f"pca{i}", lambda r, i=i: pca_panel(r, i), f"{KEY}.pca{i}")
    live_chart(runner, "spectrum", lambda r: spectrum_figure(
        [(_("step {step}").format(step=0), r.first.arrays["sv"])]
        + [(lab, r.latest.arrays[pre + "sv"]) for pre, lab in zip(pres, labels)]), f"{KEY}.spectrum")
    st.caption(_("A complete collapse shows as the whole spectrum sinking by orders of magnitude, a dimensional "
               "collapse as a tail that falls away while the top values stay. The plain effective rank (exp of the "
               "entropy of the normalized singular values) sees only the shape, not the level: a sunken but flat "
               "spectrum scores high. The metric above multiplies it by the total variance Σσ², so it falls to 0."))
    # Names are Msgs (English keys; the features page shows them with tr()): the same run, one entry, any language.
    for pre, run in zip(pres, [run_label(cfg)] + ([run_label(variant(cfg))] if cfg.compare != "none" else [])):
        publish(FeatureSource(name=Msg(N_("SSL ({run}): encoder features"), run=run), page=KEY, step=snap.step,
                              config=dataclasses.asdict(runner.config), features=snap.arrays[pre + "features"],
                              labels=y, images=data.x_test[:, 0].numpy(), class_names=data.classes))
        publish(FeatureSource(name=Msg(N_("SSL ({run}): projector output z/‖z‖"), run=run), page=KEY,
                              step=snap.step,
                              config=dataclasses.asdict(runner.config), features=snap.arrays[pre + "embedding"],
                              labels=y, images=data.x_test[:, 0].numpy(), class_names=data.classes))
    draw_tsne(runner, snap, pres, labels, data)
    if cfg.method == "moco":
        draw_queue_sweep(cfg, m)


def draw_queue_sweep(cfg, m) -> None:
    if not st.toggle(_("Queue size sweep: kNN accuracy against K (on request)"), key=f"{KEY}.sweep_on",
                     help=_("Trains short MoCo runs (this run's settings, 150 steps) at several K; about a minute.")):
        return
    ss = st.session_state
    if st.button(_("Run the sweep (K = 64, 256, 1024, 4096; 150 steps each)"), key=f"{KEY}.sweep_go"):
        ss[f"{KEY}.sweep"] = (cfg, queued(_("MoCo queue-size sweep"), queue_sweep, cfg, (64, 256, 1024, 4096), 150,
                                          (cfg.seed,)))
    cache = ss.get(f"{KEY}.sweep")
    if cache is None:
        st.info(_("Press the button to train the sweep. Measured over 5 unseen seeds (200-204, 200 steps each; "
                "python -m dlviz bench --only 'queue sweep'): kNN 97.1%, 97.6%, 97.2%, 97.3% for K = 64, 256, "
                "1024, 4096 against 94.6% for the random encoder. On this small set a larger queue does not help: "
                "the differences are within the seeds' spread (about 1.5 points). MoCo's ImageNet gain from K "
                "comes from far more distinct images than a queue can hold."))
        return
    show(queue_sweep_figure(cache[1], m["knn_acc_random_encoder"]), key=f"{KEY}.sweep_fig")
    st.caption(_("Settings of the run at the time of the sweep ({run_label}), 150 steps per K. The training set has "
                 "only about 1,300 images: at K = 4096 every image has several older keys of its own in the queue "
                 "(false negatives).").format(run_label=tr(run_label(cache[0]))))


def draw_tsne(runner, snap, pres, labels, data) -> None:
    if not st.toggle(_("t-SNE of the encoder features (on request)"), key=f"{KEY}.tsne_on",
                     help=_("t-SNE takes a few seconds; it is computed for the current step when you press the button.")):
        return
    ss = st.session_state
    cache = ss.get(f"{KEY}.tsne")
    if st.button(_("Compute t-SNE at this step"), key=f"{KEY}.tsne_go"):
        seed = runner.config.seed
        cache = (runner.token, snap.step, queued(_("t-SNE of the test features"), lambda: [
            tsne(snap.arrays[p + "features"], seed=seed) for p in pres]))
        ss[f"{KEY}.tsne"] = cache
    if cache is None or cache[0] is not runner.token:  # the run's token, not an id(): ids are reused
        st.info(_("Press the button to embed the encoder features of the test digits at the current step."))
        return
    cols = st.columns(len(cache[2]))
    for i, (col, coords, label) in enumerate(zip(cols, cache[2], labels)):
        with col:
            show(embedding_scatter(coords, data.y_test.numpy(),
                                   _("t-SNE, {name}, step {step}").format(name=label, step=cache[1]),
                                   class_names=data.classes),
                 key=f"{KEY}.tsne{i}")


if not np.isfinite(data.x_train.numpy()).all():
    st.error(_("The dataset contains NaN or infinite pixels: check the files in $DLVIZ_DATA."))
    st.stop()
live_run(KEY, demo, config, current_device(), draw, stage=stage)
