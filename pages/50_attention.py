"""Attention: from kernel regression to a Transformer's heads
icon: 🔍
Attention as a weighted average, from kernel regression to a tiny Transformer whose heads you watch align.
"""

import numpy as np
import streamlit as st

from dlviz.demos import get_demo
from dlviz.figures import attention as figs
from dlviz.figures.common import metric_curves
from dlviz.models.attention import compare_scoring, positional_encoding, softmax_sharpness
from dlviz.ui import (config_form, current_device, explain, global_seed, lecture_mode, live_chart, live_run,
                      part_switch, show)
from dlviz.ui.topics import require_app
from dlviz.i18n import N_, _

require_app(__file__)

KEY = "attn"
PARTS = {"kernel": N_("1 · Kernel regression"), "scoring": N_("2 · Scoring functions"),
         "position": N_("3 · Positional encoding"), "transformer": N_("4 · Transformer heads")}
ss = st.session_state
st.title(_("Attention: from kernel regression to a Transformer's heads"))
part = part_switch(KEY, PARTS)


def kernel_part() -> None:
    demo = get_demo("kernel-regression")
    stage = st.container()  # figure first: buttons and the live view above the controls
    config = config_form(demo, f"{KEY}.kr")
    explain(
        _("Nadaraya-Watson regression predicts at a query x a **weighted average of the training targets**, "
        "with weights from a softmax over how close x is to each training input: the query is x, the keys are "
        "the training inputs, the values their targets. With w fixed at 1 this is a classic (non-parametric) "
        "Gaussian kernel; learning w by gradient descent makes it *parametric attention*. Each training point "
        "predicts its own target from the **other** points (leave one out)."),
        r"f(x) = \sum_{i=1}^{n} \operatorname{softmax}_i\!\Big(-\tfrac{1}{2}\big((x - x_i)\,w\big)^2\Big)\, y_i",
        claim=_("As w is learned the attention weights concentrate on the nearest training points: the heatmap's "
              "band narrows and the test error falls below the over-smoothed w = 1 kernel's. Without leave-one-out "
              "a point can copy its own target, so w grows without bound and the curve chases the noise."))
    live_run(f"{KEY}.kr", demo, config, current_device(), draw_kernel, stage=stage)


def draw_kernel(runner) -> None:
    snap = runner.latest
    if snap is None:
        return
    m = snap.metrics
    c = st.columns(4)
    c[0].metric("w", f"{m['w']:.3f}")
    c[1].metric(_("test MSE, fixed w = 1"), f"{m['mse_nonparametric']:.3f}")
    c[2].metric(_("test MSE, learned w"), f"{m['mse_learned']:.3f}")
    c[3].metric(_("training loss"), f"{m['train_loss']:.4f}")
    left, right = st.columns([1, 1])
    with left:
        # Every live figure is built once per snapshot for all the sessions watching the run (shared_view).
        live_chart(runner, "fit", lambda r: figs.kernel_fit_figure(
            r.latest.arrays, r.latest.metrics["w"], height=210 if lecture_mode() else 380), f"{KEY}.kr.fit")
    with right:
        live_chart(runner, "curves", lambda r: metric_curves(
            r.history, [("w", ["w"]), (_("test MSE against the truth"), ["mse_nonparametric", "mse_learned"])],
            height=210 if lecture_mode() else 380), f"{KEY}.kr.curves")
    live_chart(runner, "attn", lambda r: figs.kernel_attention_figure(r.latest.arrays, r.latest.metrics["w"]),
               f"{KEY}.kr.attn")


def scoring_part() -> None:
    explain(
        _("An **attention scoring function** a(q, k) rates how well a key matches a query; a softmax turns the "
        "scores into weights. Additive attention learns a small MLP and works for queries and keys of different "
        "sizes; scaled dot product needs equal sizes and no parameters. The **masked softmax** gives zero "
        "weight to keys past an example's valid length (padding)."),
        r"a_{\text{add}}(\mathbf q, \mathbf k) = \mathbf w_v^\top \tanh(\mathbf W_q \mathbf q + \mathbf W_k \mathbf k),"
        r"\qquad a_{\text{dot}}(\mathbf q, \mathbf k) = \frac{\mathbf q^\top \mathbf k}{\sqrt d}",
        claim=_("For random q, k with unit-variance entries, q·k has variance d. Without the 1/√d the softmax "
              "becomes nearly one-hot as d grows (entropy falls to 0); with it the sharpness stays the same."))
    c = st.columns(4)
    d = c[0].select_slider(_("dimension d of q and k"), [2, 4, 8, 16, 64, 256, 1024], 16, key=f"{KEY}.sc.d", format_func=_)
    n_keys = c[1].slider(_("keys"), 2, 12, 8, key=f"{KEY}.sc.keys")
    v1 = c[2].slider(_("valid length, example 1"), 1, n_keys, min(3, n_keys), key=f"{KEY}.sc.v1")
    v2 = c[3].slider(_("valid length, example 2"), 1, n_keys, n_keys, key=f"{KEY}.sc.v2")
    weights = compare_scoring(d, n_keys, (v1, v2), seed=global_seed())
    show(figs.scoring_figure(weights, (v1, v2)), key=f"{KEY}.sc.weights")
    dims = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    show(figs.sharpness_figure(dims, _sharpness(tuple(dims), n_keys, global_seed()), n_keys), key=f"{KEY}.sc.sharp")


@st.cache_data(max_entries=32, show_spinner=False)
def _sharpness(dims: tuple, n_keys: int, seed: int) -> dict:
    return softmax_sharpness(dims, n_keys, seed=seed)


def position_part() -> None:
    explain(
        _("Self-attention treats its input as a **set**: permuting the tokens permutes the outputs the same way. "
        "To know where a token sits, the Transformer adds a positional encoding to each embedding: sines and "
        "cosines whose frequency falls with the column index, like the bits of a binary counter."),
        r"P_{i,2j} = \sin\!\Big(\frac{i}{10000^{2j/d}}\Big),\qquad P_{i,2j+1} = \cos\!\Big(\frac{i}{10000^{2j/d}}\Big)",
        claim=_("Each (sin, cos) pair of $P_{i+\\delta}$ is that pair of $P_i$ rotated by an angle that depends "
              "only on $\\delta$, so $P_i \\cdot P_j$ depends only on the offset $i - j$: the similarity matrix "
              "is constant along its diagonals."))
    c = st.columns(3)
    n = c[0].slider(_("positions"), 8, 120, 60, key=f"{KEY}.pe.n")
    d = c[1].select_slider(_("encoding dimension d"), [8, 16, 32, 64, 128], 32, key=f"{KEY}.pe.d", format_func=_)
    cols = c[2].multiselect(_("columns to plot"), list(range(d)), [c_ for c_ in (6, 7, 8, 9) if c_ < d],
                            key=f"{KEY}.pe.cols")
    P = positional_encoding(n, d).numpy()
    left, right = st.columns(2)
    with left:
        show(figs.pe_heatmap(P), key=f"{KEY}.pe.map")
    with right:
        show(figs.pe_similarity(P), key=f"{KEY}.pe.sim")
    if cols:
        show(figs.pe_columns(P, cols), key=f"{KEY}.pe.cols_fig")
    else:
        st.info(_("Pick at least one column to plot its curve."))


MAP_NAMES = {"enc_self": N_("encoder self-attention"), "dec_self": N_("decoder self-attention (masked)"),
             "cross": N_("cross-attention (decoder → encoder)")}


def transformer_part() -> None:
    demo = get_demo("transformer")
    stage = st.container()  # figure first: buttons and the live view above the controls
    config = config_form(demo, f"{KEY}.tf")
    explain(
        _("A tiny Transformer learns a sequence task from random examples. Every block has multi-head attention: "
        "each head projects the tokens to its own queries, keys and values and attends on its own, and the "
        "heads' outputs are concatenated. The decoder's self-attention is **masked** (a position sees only "
        "earlier ones); its **cross-attention** reads the encoder. Token accuracy is measured by greedy "
        "decoding of 256 held-out sequences; the maps below are the teacher-forced pass."),
        r"\operatorname{head}_i = \operatorname{softmax}\!\Big(\frac{(Q W_i^Q)(K W_i^K)^\top}{\sqrt{d/h}}\Big)"
        r"\, V W_i^V,"
        r"\qquad \operatorname{MultiHead} = [\operatorname{head}_1, \dots, \operatorname{head}_h]\, W^O",
        claim=_("On reverse, output i must copy input L-1-i: the last cross-attention layer turns into the "
              "anti-diagonal. Without positional encoding it cannot, and accuracy stays low."))
    live_run(f"{KEY}.tf", demo, config, current_device(), draw_transformer, stage=stage)


def draw_transformer(runner) -> None:
    snap, cfg = runner.latest, runner.config
    if snap is None:
        return
    m, a = snap.metrics, snap.arrays
    c = st.columns(4)
    c[0].metric(_("token accuracy"), f"{m['token_acc']:.1%}")
    c[1].metric(_("sequence accuracy"), f"{m['seq_acc']:.1%}")
    c[2].metric(_("mass on source position"), f"{m['diag_mass']:.0%}",
                help=_("Best head of the last cross-attention layer (encoder self-attention if encoder-only): "
                     "mean weight on the input position each output copies (the anti-diagonal for reverse; for "
                     "sort, every position holding the output's digit counts, since equal digits are "
                     "interchangeable)."))
    c[3].metric(_("training loss"), f"{m['train_loss']:.3f}")
    # Every live figure is built once per snapshot for all the sessions watching the run (shared_view); the
    # example, map, layer and head a session shows are part of the key.
    live_chart(runner, "curves", lambda r: metric_curves(
        r.history, [(_("training loss (cross-entropy)"), ["train_loss"]),
                    (_("held-out accuracy and alignment"), ["token_acc", "seq_acc", "diag_mass"])],
        height=210 if lecture_mode() else 320), f"{KEY}.tf.curves")
    ex = st.slider(_("Example (held-out sequence)"), 0, len(a["src"]) - 1, 0, key=f"{KEY}.tf.example")
    src, tgt, pred = a["src"][ex], a["tgt"][ex], a["pred"][ex]
    st.markdown(_("input `{join}` → target `{join2}` → model `{join3}` ({mean:.0%} of tokens right)").format(
                    join=' '.join(map(str, src)),
                    join2=' '.join(map(str, tgt)),
                    join3=' '.join(map(str, pred)),
                    mean=(pred == tgt).mean()))
    kinds = [k for k in MAP_NAMES if k in a]
    cols = st.columns(len(kinds))
    for col, kind in zip(cols, kinds):
        with col:
            live_chart(runner, f"grid.{kind}", lambda r, kind=kind: figs.attention_grid(
                r.latest.arrays[kind][ex], _("{name}: layer × head").format(name=_(MAP_NAMES[kind]))),
                f"{KEY}.tf.grid.{kind}", ex)
    for name, n in (("layer", cfg.layers), ("head", cfg.heads)):  # a smaller model since the last draw
        if ss.get(f"{KEY}.tf.{name}", 1) > n:
            ss[f"{KEY}.tf.{name}"] = n
    c = st.columns(3)
    kind = c[0].selectbox(_("Enlarge"), kinds, index=len(kinds) - 1, format_func=lambda k: _(MAP_NAMES[k]),
                        key=f"{KEY}.tf.kind")
    layer = c[1].selectbox(_("layer"), range(1, cfg.layers + 1), index=cfg.layers - 1, key=f"{KEY}.tf.layer")
    head = c[2].selectbox(_("head"), range(1, cfg.heads + 1), key=f"{KEY}.tf.head")

    def big(r):  # the example's tokens and maps from the snapshot it is given (the live feed gives newer ones)
        a = r.latest.arrays
        src, tgt = a["src"][ex], a["tgt"][ex]
        src_labels = [f"{t}·{i}" for i, t in enumerate(src)]
        dec_labels = ["BOS"] + [f"{t}·{i}" for i, t in enumerate(tgt[:-1])]
        q_labels = src_labels if kind == "enc_self" else dec_labels
        k_labels = dec_labels if kind == "dec_self" else src_labels
        aligned = "cross" if "cross" in a else "enc_self"
        source = _source_positions(r.config.task, src) if kind == aligned else None
        return figs.attention_map(
            a[kind][ex, layer - 1, head - 1], q_labels, k_labels,
            _("{name}, layer {layer}, head {head} (token·position)").format(name=_(MAP_NAMES[kind]), layer=layer,
                                                                             head=head), source)

    live_chart(runner, "big", big, f"{KEY}.tf.big", ex, kind, layer, head)


def _source_positions(task: str, src: np.ndarray) -> np.ndarray:
    """Which input position each output copies (red squares on the enlarged map)."""
    if task == "reverse":
        return np.arange(len(src))[::-1]
    if task == "copy":
        return np.arange(len(src))
    return np.argsort(src, kind="stable")


{"kernel": kernel_part, "scoring": scoring_part, "position": position_part, "transformer": transformer_part}[part]()
st.query_params["part"] = part
