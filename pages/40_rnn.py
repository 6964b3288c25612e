"""Recurrent networks: RNN, GRU, LSTM
icon: 🔁
A plain RNN, a GRU and an LSTM train side by side: memory over L steps, gates over time, vanishing and exploding gradients.
"""

import numpy as np
import streamlit as st

from dlviz.data.sequences import ADDING_BASELINE_MSE, RECALL_SYMBOLS, SINE_NOISE
from dlviz.demos import get_demo
from dlviz.demos.rnn import CELL_SETS, K_STEPS, make_task, probe
from dlviz.figures.rnn import (CELL_LABELS, gate_heatmaps, hidden_paths, input_gradient_figure, kstep_error_figure,
                               kstep_figure, sequence_figure, training_curves)
from dlviz.ui import config_form, current_device, explain, lecture_mode, live_chart, live_run, shared_view, show
from dlviz.ui.topics import require_app
from dlviz.i18n import N_, _

require_app(__file__)

KEY = "rnn"
demo = get_demo("rnn")
st.title(_("Recurrent networks: what the gates buy"))
stage = st.container()  # figure first: buttons and the live view above the controls
config = config_form(demo, KEY)

explain(
    _("A recurrent network reads a sequence one step at a time and carries a hidden state $H_t$. The **plain RNN** "
    "rewrites it every step, $H_t = \\tanh(X_t W_{xh} + H_{t-1} W_{hh} + b)$, so the gradient that reaches step "
    "$t$ from the end is a product of $T - t$ Jacobians: it vanishes (or explodes) geometrically. The **GRU** "
    "adds a reset gate $R_t$ (how much of the past feeds the candidate state: short-term dependencies) and an "
    "update gate $Z_t$ (how much of the old state to keep: long-term dependencies). With $Z_t \\approx 1$ the "
    "state is copied unchanged and so is the gradient. The candidate below is the one the code runs (PyTorch's "
    "`nn.GRU`, as in cuDNN): the reset gate multiplies $H_{t-1} W_{hh} + b_{hh}$ *after* the product, whereas Cho "
    "et al. (2014) and d2l reset the state before it, $(R_t \\odot H_{t-1}) W_{hh}$, a slightly different function:"),
    r"R_t = \sigma(X_t W_{xr} + H_{t-1} W_{hr} + b_r),\quad Z_t = \sigma(X_t W_{xz} + H_{t-1} W_{hz} + b_z)",
    r"\tilde H_t = \tanh\big(X_t W_{xh} + b_{xh} + R_t \odot (H_{t-1} W_{hh} + b_{hh})\big),\quad "
    r"H_t = Z_t \odot H_{t-1} + (1 - Z_t) \odot \tilde H_t",
    r"\text{LSTM: } C_t = F_t \odot C_{t-1} + I_t \odot \tilde C_t,\quad H_t = O_t \odot \tanh(C_t)"
    r"\qquad \text{clipping: } g \leftarrow \min\!\big(1, \theta / \lVert g \rVert\big)\, g",
    claim=_("On the adding problem with L = 50 the GRU's test MSE falls below 0.01 while the plain RNN stays at the "
          "0.167 of always answering 1: its gradient with respect to early inputs has vanished. Predictions fed "
          "with their own outputs accumulate error: the 64-step-ahead MSE is far above the one-step MSE."),
)
if config.task == "sine" and config.lag != demo.default_config().lag:
    st.caption(_("The sine task always uses windows of 4 values (d2l); the lag L applies to adding and recall."))


def _marks(task_name: str, x: np.ndarray) -> list[int]:
    """Steps to flag in the views: the marked numbers (adding), the symbol and the query (recall)."""
    if task_name == "adding":
        return [int(t) for t in np.flatnonzero(x[:, 1] > 0)]
    if task_name == "recall":
        return [0, len(x) - 1]
    return []


def _answer(prediction: np.ndarray, classify: bool) -> str:
    return str(int(np.argmax(prediction))) if classify else f"{float(prediction[0]):.3f}"


def _probe_cached(runner, task, index: int) -> dict:
    """One probe per (run, snapshot, sequence), shared by every session watching the run (shared_view): a paused
    page redraws without recomputing, and a class watching one run computes it once per snapshot."""
    return shared_view(runner, "probe", lambda: probe(runner.config, runner.latest.arrays["states"], task, index),
                       index)


def draw_metrics(runner, task) -> None:
    m, cells = runner.latest.metrics, CELL_SETS[runner.config.cells]
    cols = st.columns(len(cells) + 1)
    for col, c in zip(cols, cells):
        if f"test_loss_{c}" not in m:
            col.metric(CELL_LABELS[c], "diverged")
        elif task.classify:
            col.metric(_("{value} test accuracy").format(value=CELL_LABELS[c]), f"{m[f'test_acc_{c}']:.1%}",
                       help=_("chance is {value:.1%}").format(value=1 / RECALL_SYMBOLS))
        else:
            col.metric(_("{value} test MSE").format(value=CELL_LABELS[c]), f"{m[f'test_loss_{c}']:.4f}",
                       help=_("one-step-ahead") if task.name == "sine" else _("always answering 1 scores 0.167"))
    secs = [m.get(f"seconds_{c}", 0.0) for c in cells]
    cols[-1].metric(_("seconds per cell"), " / ".join(f"{s:.0f}" for s in secs),
                    help=_("each cell's own training time, in the order of the cells"))
    for msg in runner.latest.arrays.get("diverged", {}).values():
        st.warning(msg, icon="💥")
    baseline = ADDING_BASELINE_MSE if task.name == "adding" else np.log(RECALL_SYMBOLS) if task.classify else None
    # Every figure of the live area is built once per snapshot for all the sessions watching the run (shared_view);
    # the sequence or cell a session shows is part of the key.
    live_chart(runner, "curves", lambda r: training_curves(r.history, cells, task.classify, baseline, r.config.clip,
                                                           height=265 if lecture_mode() else 330), f"{KEY}.curves")


def draw_kstep(runner, task) -> None:
    st.subheader(_("k-step-ahead prediction: errors accumulate"))
    tables, m = runner.latest.arrays.get("kstep", {}), runner.latest.metrics
    if not tables:
        return
    left, right = st.columns([3, 2])
    with left:
        cell = st.radio(_("Cell"), list(tables), horizontal=True, key=f"{KEY}.kcell", format_func=CELL_LABELS.get)
        s = task.sine
        show(shared_view(runner, "kstep", lambda: kstep_figure(s.time.numpy(), s.series.numpy(), tables[cell], s.tau,
                                                               K_STEPS, s.n_train, cell), cell), key=f"{KEY}.kstep")
    with right:
        mse = {c: {k: m[f"mse_k{k}_{c}"] for k in K_STEPS} for c in tables}
        show(shared_view(runner, "kerr", lambda: kstep_error_figure(mse, SINE_NOISE ** 2)), key=f"{KEY}.kerr")
    st.caption(_("Each k-step prediction starts from 4 observed values and feeds its own k - 1 previous predictions "
               "back in: small one-step errors compound, and far ahead the prediction decays to a constant."))


def draw_inside(runner, task) -> None:
    st.subheader(_("Inside the cells, for one test sequence"))
    n = len(task.test_x)
    if st.session_state.get(f"{KEY}.seq", 0) > n - 1:  # the sine has fewer test windows than the memory tasks
        st.session_state[f"{KEY}.seq"] = n - 1
    index = st.slider(_("Test sequence"), 0, n - 1, 0, key=f"{KEY}.seq",
                      help=_("Gates, hidden path and prediction of the networks at the current step for this sequence."))
    x = task.test_x[index].numpy()
    marks = _marks(task.name, x)
    out = _probe_cached(runner, task, index)
    left, right = st.columns([3, 2])
    with left:
        show(shared_view(runner, "input", lambda: sequence_figure(x, task.name, marks), index), key=f"{KEY}.input")
    with right:
        y = task.test_y[index]
        truth = f"{int(y)}" if task.classify else f"{float(y[0]):.3f}"
        preds = ", ".join(f"{CELL_LABELS[c]} **{_answer(o['prediction'], task.classify)}**" for c, o in out.items())
        st.markdown(_("Target **{truth}**; predictions: {preds}.").format(truth=truth, preds=preds))
    for c in ("gru", "lstm"):
        if c in out:
            show(shared_view(runner, f"gates_{c}", lambda c=c: gate_heatmaps(out[c]["gates"], c, marks), index),
                 key=f"{KEY}.gates_{c}")
    if "gru" in out:
        st.caption(_("Update gate Z_t near 1 (yellow) copies the state unchanged: after a marked input the GRU holds "
                   "what it stored across the distractors. The reset gate R_t decides how much of the past enters "
                   "the candidate state."))
    show(shared_view(runner, "paths", lambda: hidden_paths({c: o["pca_path"] for c, o in out.items()},
                                                           {c: o["pca_ratio"] for c, o in out.items()}, marks), index),
         key=f"{KEY}.paths")
    show(shared_view(runner, "igrad", lambda: input_gradient_figure({c: o["input_grad"] for c, o in out.items()}, marks),
                     index), key=f"{KEY}.igrad")
    st.caption(_("The mean over 64 test sequences of the gradient of each sequence's loss with respect to its "
               "input at step t. For the plain RNN it shrinks geometrically towards early steps (vanishing "
               "gradients), so the first marked number cannot be learned; the gated cells keep it alive."))


def draw(runner) -> None:
    """The live area: numbers and curves, redrawn several times a second."""
    if runner.latest is None:
        return
    draw_metrics(runner, make_task(runner.config))


def draw_views(runner) -> None:
    """The heavier views (k-step predictions, the cells' insides): on the slower timer, right below."""
    if runner.latest is None:
        return
    task = make_task(runner.config)
    if task.sine is not None:
        draw_kstep(runner, task)
    if runner.latest.arrays.get("states"):
        draw_inside(runner, task)


live_run(KEY, demo, config, current_device(), draw, draw_slow=draw_views, stage=stage)
