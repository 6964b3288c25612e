"""Distillation and EMA teachers
icon: 🧑‍🏫
A LeNet's softened outputs teach a small student from 100 labels; an EMA of a student's weights steadies it.
"""

from pathlib import Path

import numpy as np
import streamlit as st
import torch

from dlviz.data.digits import load_image_dataset
from dlviz.demos import get_demo
from dlviz.demos.teachers import INPUT_SIZE, last_quarter, temperature_sweep
from dlviz.figures import teachers as figs
from dlviz.figures.common import image_grid
from dlviz.i18n import N_, _
from dlviz.models.student import mean_soft_targets
from dlviz.ui import (config_form, current_device, explain, lecture_mode, live_chart, live_run, part_switch,
                      shared_view, show)
from dlviz.ui.compute import queued
from dlviz.ui.topics import require_app

require_app(__file__)

KEY = "teach"
PAGES = Path(__file__).resolve().parent
PARTS = {"distill": N_("1 · Knowledge distillation"), "ema": N_("2 · EMA teacher")}
SHOWN_T = (1.0, 4.0, 10.0)  # the softened distributions drawn for the chosen digit
SWEEP_T = (1.0, 2.0, 4.0, 8.0, 20.0)
ss = st.session_state
st.title(_("Distillation and EMA teachers"))
part = part_switch(KEY, PARTS)


def _link(page: str, label: str) -> None:
    st.page_link(str(PAGES / page), label=label, icon="🔗")


# --- 1. distillation ------------------------------------------------------------------------------------------

def distill_part() -> None:
    demo = get_demo("distill")
    stage = st.container()  # figure first: buttons and the live curves above the controls
    views = st.container()  # the teacher's softened outputs and the T sweep, below the curves
    config = config_form(demo, f"{KEY}.kd")
    explain(
        _("**Knowledge distillation** (Hinton, Vinyals & Dean 2015): a large *teacher* (the CNN page's LeNet, "
          "trained first on all 1,437 training digits) teaches a much smaller *student* (an MLP 256 → 32 → 10, "
          "about 8k weights against LeNet's 21k) through its outputs softened by a temperature T. Dividing the "
          "logits by T > 1 lifts the small probabilities of the wrong classes, the *dark knowledge*: a 3 that "
          "looks a little like an 8. The student gets n labelled digits, and on the other training digits (the "
          "*transfer set*) only the teacher's soft targets, their labels ignored. Its twin starts from the same "
          "weights and sees the same labelled batches with their hard labels only."),
        r"\mathcal L = \alpha\,T^2\,\mathrm{KL}\big(q_t\,\|\,q_s\big) + (1-\alpha)\,\mathrm{CE}(y, z_s),\qquad "
        r"q = \operatorname{softmax}(z/T)",
        r"\text{(on transfer batches only the first term: their labels are ignored)}",
        r"\frac{\partial\,\mathrm{KL}}{\partial z_s} = \frac{q_s - q_t}{T} "
        r"\approx \frac{z_s - z_t}{C\,T^2}\ \text{ for large } T \text{ (zero-mean logits)}",
        r"\Rightarrow\ \text{the factor } T^2 \text{ keeps the soft term's weight the same at every } T",
        claim=_("With 100 labels the distilled student ends 5-9 points of test accuracy above its hard-label twin "
                "(seeds 0-4, 1,000 steps). Without a transfer set, on the same 50 images, soft targets at T = 4 "
                "still win (by 1 to 14 points): they say more per image than a label."))
    live_run(f"{KEY}.kd", demo, config, current_device(), draw_distill, draw_slow=draw_teacher_view, stage=stage,
             views=views, main_view=lambda r: figs.distill_curves(r.history, r.latest.metrics["teacher_acc"]))


def draw_distill(runner) -> None:
    snap = runner.latest
    if snap is None:
        return
    m = snap.metrics
    c = st.columns(4)
    c[0].metric(_("distilled student"), f"{m['kd_acc']:.1%}", help=_("test accuracy on the 360 test digits"))
    c[1].metric(_("hard labels only"), f"{m['hard_acc']:.1%}", help=_("the twin: same weights at step 0, same "
                                                                        "labelled batches, cross-entropy only"))
    c[2].metric(_("gap"), f"{m['gap'] * 100:+.1f} " + _("points"))
    c[3].metric(_("teacher (LeNet)"), f"{m['teacher_acc']:.1%}",
                help=_("trained in {s:.1f} s at the start of this run (0: from the cache)").format(
                    s=m["teacher_seconds"]))
    # Live figures: built once per snapshot for all the sessions watching the run (shared_view).
    live_chart(runner, "curves", lambda r: figs.distill_curves(r.history, r.latest.metrics["teacher_acc"]),
               f"{KEY}.kd.curves")
    if "omit_recall_kd" in m:
        st.caption(_("Digit {d} was left out of both students' data: the distilled student recognizes "
                     "{kd:.0%} of the test {d}s, the hard-label twin {hard:.0%}. Only the teacher's soft targets "
                     "on other digits can tell it what a {d} is (a lottery at this scale: measured from 0% to 95% "
                     "across seeds; higher T helps).").format(
                         d=runner.config.omit_digit, kd=m["omit_recall_kd"], hard=m["omit_recall_hard"]))


def draw_teacher_view(runner) -> None:
    snap, cfg = runner.latest, runner.config
    if snap is None:
        return
    data = load_image_dataset("digits", INPUT_SIZE)
    logits = snap.arrays["teacher_logits"]
    y = data.y_test.numpy()
    left, right = st.columns([1, 1])
    with left:
        i = st.slider(_("Test digit"), 0, len(y) - 1, 3, key=f"{KEY}.kd.digit",
                      help=_("one of the 360 test digits: its teacher output at three temperatures"))
        a, b = st.columns([1, 3])
        with a:
            show(image_grid(data.x_test[i:i + 1, 0].numpy(), ncols=1, tile_px=110), key=f"{KEY}.kd.image")
        with b:
            st.markdown(_("true class **{y}**; teacher says **{p}**; distilled student **{k}**; "
                          "hard-label twin **{h}**").format(y=y[i], p=int(logits[i].argmax()),
                                                              k=int(snap.arrays["kd_logits"][i].argmax()),
                                                              h=int(snap.arrays["hard_logits"][i].argmax())))
        show(shared_view(runner, "soft", lambda: figs.softened_figure(logits[i], SHOWN_T, int(y[i])), i),
             key=f"{KEY}.kd.soft")
    with right:
        show(shared_view(runner, "sim", lambda: figs.similarity_figure(
            mean_soft_targets(torch.as_tensor(logits), data.y_test, cfg.temperature).numpy(), cfg.temperature)),
             key=f"{KEY}.kd.sim")
        st.caption(_("Each row: the teacher's mean soft target over the test digits of one class at this run's T, "
                     "its own class left out. The bright cells are the dark knowledge the student receives."))
    draw_sweep(runner)


def draw_sweep(runner) -> None:
    cfg = runner.config
    if not st.toggle(_("Temperature sweep (on request)"), key=f"{KEY}.kd.sweep_on",
                     help=_("Trains the distilled student again at T = 1, 2, 4, 8, 20 with this run's settings.")):
        return
    cache = ss.get(f"{KEY}.kd.sweep")
    if st.button(_("Compute the T sweep ({n} runs of {s} steps)").format(n=len(SWEEP_T), s=cfg.steps),
                 key=f"{KEY}.kd.sweep_go"):
        rows = queued(_("Temperature sweep"), temperature_sweep, cfg, SWEEP_T, runner.device)
        cache = ss[f"{KEY}.kd.sweep"] = (runner.token, rows)
    if cache is None or cache[0] is not runner.token:  # the run's token, not an id(): ids are reused
        st.info(_("Press the button to train the distilled student at each temperature (same teacher, weights and "
                  "batches). Measured on seeds 0-2: with the transfer set T hardly matters (94-96% from T = 1 to "
                  "8): the teacher's answers on 1,337 extra digits carry the gain. On 50 labelled digits alone, "
                  "T = 1 is no better than the hard labels (79-81%), while T = 4 to 20 adds 3 to 9 points on two of "
                  "the three seeds: the gain is in the wrong-class probabilities that only a higher T makes "
                  "visible."))
        return
    show(figs.sweep_figure(cache[1]), key=f"{KEY}.kd.sweep_fig")


# --- 2. EMA teacher ---------------------------------------------------------------------------------------------

def ema_part() -> None:
    demo = get_demo("ema")
    stage = st.container()
    config = config_form(demo, f"{KEY}.ema")
    explain(
        _("An **exponential moving average** of a model's weights is a model too: after every SGD step of the "
          "student, the EMA model moves a fraction 1 − m of the way toward it, so it averages the last "
          "≈ 1/(1 − m) steps. Under noisy SGD (a high learning rate, batches of 8) the student's weights jitter "
          "around a good region and its test accuracy jumps from one snapshot to the next; the average sits near "
          "the middle of that region. The student has no BatchNorm, so its parameters are its whole state (with "
          "BatchNorm the EMA model would copy the running statistics, as `ema_update` does for any buffer)."),
        r"\theta_{\text{ema}} \leftarrow m\,\theta_{\text{ema}} + (1 - m)\,\theta"
        r"\qquad (m = 0:\ \text{a copy};\ m = 1:\ \text{frozen at the start})",
        claim=_("Over the last quarter of 1,000 steps the EMA model's test accuracy is higher (about 95% against "
                "93.5%) and five to ten times steadier (std 0.2-0.3 points against 1.3-2.7) than the student's "
                "(seeds 0-4; the same on unseen seeds 200-204)."))
    st.markdown(_("**Where the EMA is the teacher.** **BYOL** trains an online network to predict the output of its "
                  "own EMA (the target network) on another view of the image. **MoCo** encodes the keys of its "
                  "queue of negatives with an EMA of the query encoder, so the queued keys stay consistent. "
                  "**DINO** distils a student into an EMA teacher of itself, without labels, matching the "
                  "teacher's centred and sharpened softmax."))
    c = st.columns(2)
    with c[0]:
        _link("70_ssl.py", _("SSL page: BYOL's EMA target, cosine-similarity kNN"))
    with c[1]:
        _link("80_dino.py", _("DINO page: an EMA teacher without labels"))
    live_run(f"{KEY}.ema", demo, config, current_device(), draw_ema, stage=stage,
             main_view=lambda r: figs.ema_curves(r.history))


def draw_ema(runner) -> None:
    snap = runner.latest
    if snap is None:
        return
    m, h = snap.metrics, runner.history
    raw_mean, raw_std = last_quarter(h, "raw_acc")
    ema_mean, ema_std = last_quarter(h, "ema_acc")
    c = st.columns(4)
    c[0].metric(_("student"), f"{m['raw_acc']:.1%}", help=_("test accuracy of the raw weights now"))
    c[1].metric(_("EMA model"), f"{m['ema_acc']:.1%}", help=_("test accuracy of the averaged weights now"))
    if snap.step > 0 and np.isfinite(raw_mean):
        c[2].metric(_("last quarter: student"), f"{raw_mean:.1%} ± {raw_std * 100:.1f}",
                    help=_("mean ± std of the test accuracy over the snapshots in the last quarter of the steps so "
                           "far (the shaded band)"))
        c[3].metric(_("last quarter: EMA"), f"{ema_mean:.1%} ± {ema_std * 100:.1f}")
    live_chart(runner, "curves", lambda r: figs.ema_curves(r.history, height=285 if lecture_mode() else 300),
               f"{KEY}.ema.curves")


{"distill": distill_part, "ema": ema_part}[part]()
st.query_params["part"] = part
