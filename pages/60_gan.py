"""GAN: a generator against a discriminator
icon: 🎭
Watch a GAN train live in 2-D (the discriminator's field, gradients, warped noise, mode collapse), in 1-D as in the original paper, and on digits.
"""

import streamlit as st

from dlviz.demos import get_demo
from dlviz.demos.gan import VISIT_WINDOW, digit_classifier
from dlviz.figures.common import image_grid, metric_curves
from dlviz.figures.gan import LAYERS, class_histogram_figure, gan_1d_figure, gan_plane_figure
from dlviz.ui import config_form, current_device, explain, lecture_mode, live_chart, live_run
from dlviz.ui.topics import require_app
from dlviz.i18n import N_, _

require_app(__file__)

KEY = "gan"
VIEWS = {"2d": N_("2-D GAN (GAN Lab, and more)"), "1d": N_("1-D: the original paper's picture"),
         "digits": N_("Digits GAN")}
st.title(_("GAN: a generator learns to fool a discriminator"))
ss = st.session_state
if f"{KEY}.view" not in ss:
    ss[f"{KEY}.view"] = st.query_params.get("view", "2d") if st.query_params.get("view") in VIEWS else "2d"
view = st.radio(_("Demo"), list(VIEWS), format_func=lambda k: _(VIEWS[k]), horizontal=True, key=f"{KEY}.view",
                on_change=st.query_params.clear, label_visibility="collapsed")
stage = st.container()  # figure first: buttons and the live view above the explanation and the controls

explain(
    _("A **generator** G maps noise z to samples; a **discriminator** D scores how real a sample looks. They play "
    "a game (Goodfellow et al., 2014): the lecture's loop takes k steps on D, then one step on G."),
    r"\min_G \max_D\; \mathbb{E}_{x\sim p_{data}}[\log D(x)] + \mathbb{E}_{z\sim p_z}[\log(1 - D(G(z)))]",
    r"D^*(x) = \frac{p_{data}(x)}{p_{data}(x) + p_g(x)} \;\to\; \tfrac12 \text{ when } p_g = p_{data}",
    r"\text{non-saturating: } \min_G -\log D(G(z)); \qquad \text{least squares: } \min_G \tfrac12 (D(G(z)) - 1)^2",
    r"\text{WGAN-GP: } \min_G -f(G(z)),\quad \max_f\; \mathbb{E}f(x) - \mathbb{E}f(G(z)) - \lambda\,(\|\nabla f(\hat x)\| - 1)^2",
    claim=_("At equilibrium the generator's density equals the data's and the best discriminator outputs 1/2 "
          "everywhere: the field greys out. The minimax generator loss saturates: with D = σ(l), the gradient of "
          "log(1 − D) in l is −D, near 0 exactly when D rejects the fakes (early training); −log D has gradient "
          "−(1 − D), near −1 there. That is why practice uses the non-saturating loss."),
)


def loss_panels(runner, extra):
    # Every figure of a live draw is built once per snapshot for all the sessions watching the run (shared_view);
    # the session's own choices (the layers shown) are part of its key.
    live_chart(runner, "curves", lambda r: metric_curves(r.history, [
        (_("losses"), ["d_loss", "g_loss"]), (_("D on real vs generated"), ["d_real", "d_fake"]), *extra]),
        f"{KEY}.{view}.curves")


def page_2d():
    demo = get_demo("gan")
    config = config_form(demo, f"{KEY}.2d")
    cols = st.columns(len(LAYERS))
    shown = [name for c, name in zip(cols, LAYERS) if c.toggle(name, value=True, key=f"{KEY}.2d.layer.{name}")]

    def draw(runner):
        snap = runner.latest
        if snap is None:
            return
        m, prob = snap.metrics, runner.config.loss != "wgan-gp"  # the run's loss, not the widget's
        items = []  # (label, value, help)
        if "modes_covered" in m:
            items += [(_("modes covered"), f"{m['modes_covered']:.0f} / {m['modes_total']:.0f}",
                       _("A mode counts when at least 1% of 2,000 samples lie within 3σ of it.")),
                      (_("now / visited"), f"{m['modes_now']:.0f} / {m['modes_visited']:.0f}",
                       _("Modes nearest to at least 1/(2K) of the samples now, and in any snapshot of the last "
                         "{VISIT_WINDOW} steps: few now but many visited = a clump hopping between modes.").format(
                           VISIT_WINDOW=VISIT_WINDOW)),
                      (_("high quality"), f"{m['high_quality']:.0%}", _("Within 3σ of some mode."))]
        items += [(_("spread"), f"{m['spread']:.2f}",
                   _("Total std of the generated samples / the data's: 1 = as spread out, near 0 = collapsed.")),
                  (_("JS divergence"), f"{m['js']:.3f}",
                   _("Between histograms of 2,000 real and 2,000 generated samples on a 40x40 grid: 0 for equal "
                     "histograms, ln 2 = 0.693 when no cell holds both. Finite samples bias it up (about 0.01 "
                     "for two samples of the ring itself); detail finer than a cell is invisible to it.")),
                  (_("mean D(real)") if prob else _("mean f(real)"), f"{m['d_real']:.2f}", None),
                  (_("mean D(generated)") if prob else _("mean f(generated)"), f"{m['d_fake']:.2f}", None)]
        lecture = lecture_mode()

        def metric_rows(per_row: int, row_items: list) -> None:
            for i in range(0, len(row_items), per_row):
                for col, (label, value, help) in zip(st.columns(per_row), row_items[i:i + per_row]):
                    col.metric(label, value, help=help)

        if not lecture:  # modes on one row, the rest on the next
            split = 3 if "modes_covered" in m else 0
            metric_rows(4, items[:split])
            metric_rows(4, items[split:])
        left, right = st.columns([1.3, 1])
        with left:  # in lecture mode the field starts right under the buttons: the first screen holds it whole
            live_chart(runner, "plane", lambda r: gan_plane_figure(
                r.latest.arrays, prob, shown, title=_("Step {step}").format(step=r.latest.step),
                height=360 if lecture_mode() else 560), f"{KEY}.2d.plane", tuple(shown))
        with right:
            if lecture:  # D's means are in the curves below
                metric_rows(3 if len(items) < 7 else 2, items[:-2])
            extra = [(_("modes: covered, now, visited"), ["modes_covered", "modes_now", "modes_visited"]),
                     (_("quality, spread, JS"), ["high_quality", "spread", "js"])] \
                if "modes_covered" in m else [(_("divergence (grid)"), ["js", "kl"]), (_("spread"), ["spread"])]
            live_chart(runner, "curves", lambda r: metric_curves(r.history, [
                (_("losses"), ["d_loss", "g_loss"]), (_("D on real vs generated"), ["d_real", "d_fake"])], height=300),
                f"{KEY}.2d.curves")
            live_chart(runner, "quality", lambda r: metric_curves(r.history, extra, height=300), f"{KEY}.2d.quality")
        st.caption(_("Heatmap: D's output over the plane (green = 'real', purple = 'fake', grey = 1/2). Orange "
                   "segments: the direction G's loss pushes each generated point (-∇ₓ of G's loss, scaled). Thin "
                   "purple lines: G's image of a grid in noise space. Dotted circles: 3σ around each mode. "
                   "Mode collapse (the collapse preset): a clump with a spread near 0 that hits one mode at a time "
                   "but visits many in turn; it can read 0 modes covered while it sits between two modes."))

    live_run(f"{KEY}.2d", demo, config, current_device(), draw, stage=stage, main_view=lambda r: gan_plane_figure(
        r.latest.arrays, r.config.loss != "wgan-gp", shown,
        title=_("Step {step}").format(step=r.latest.step)))


def page_1d():
    demo = get_demo("gan-1d")
    config = config_form(demo, f"{KEY}.1d")
    st.markdown(_("Panel (b) of the paper first: D warms up alone and learns to separate the two densities; "
                "then G moves its mass toward the data and D flattens toward 1/2."))

    def draw(runner):
        snap = runner.latest
        if snap is None:
            return
        m = snap.metrics
        c = st.columns(4)
        c[0].metric(_("|D − ½| on data"), f"{m['d_gap']:.3f}")
        c[1].metric(_("JS divergence"), f"{m['js']:.3f}", help=_("Between histograms of 20,000 real and 20,000 generated "
                    "samples on 100 bins over [-4, 6]: 0 for equal histograms, ln 2 = 0.693 when no bin holds both."))
        cfg = runner.config  # the run's data, not the widgets' (they may have changed since it started)
        c[2].metric(_("generator mean"), f"{m['gen_mean']:.2f}", help=_("data: {data_mean:.2f}").format(data_mean=cfg.data_mean))
        c[3].metric(_("generator std"), f"{m['gen_std']:.2f}", help=_("data: {data_std:.2f}").format(data_std=cfg.data_std))
        live_chart(runner, "density", lambda r: gan_1d_figure(
            r.latest.arrays, r.config.data_mean, title=_("Step {step}").format(step=r.latest.step),
            height=235 if lecture_mode() else 440), f"{KEY}.1d.fig")
        loss_panels(runner, [(_("|D - 1/2| and JS"), ["d_gap", "js"])])

    live_run(f"{KEY}.1d", demo, config, current_device(), draw, stage=stage, main_view=lambda r: gan_1d_figure(
        r.latest.arrays, r.config.data_mean, title=_("Step {step}").format(step=r.latest.step)))


def page_digits():
    demo = get_demo("gan-digits")
    config = config_form(demo, f"{KEY}.digits")
    _unused, acc = digit_classifier()
    st.markdown(_("Diversity is measured by a small classifier trained once on the real digits (test accuracy "
                  "**{acc:.1%}**): the entropy of its mean prediction over 500 generated digits is ln 10 = 2.30 when "
                  "every class is equally common and 0 when the generator draws a single digit.").format(acc=acc))
    st.latex(r"H\big(\bar p\big) = -\sum_c \bar p_c \log \bar p_c,\quad \bar p = \tfrac1N \sum_i p(y \mid G(z_i));"
             r"\qquad \mathrm{IS} = \exp \mathbb{E}_i\, \mathrm{KL}\big(p(y\mid G(z_i)) \,\|\, \bar p\big)")

    def draw(runner):
        snap = runner.latest
        if snap is None:
            return
        m = snap.metrics
        c = st.columns(4)
        c[0].metric(_("class entropy"), f"{m['class_entropy']:.2f}", help=_("ln 10 = 2.30 is uniform over digits"))
        c[1].metric(_("inception score"), f"{m['inception_score']:.2f}", help=_("between 1 and 10"))
        c[2].metric(_("confidence"), f"{m['confidence']:.0%}", help=_("mean top probability"))
        c[3].metric(_("mean D(generated)"), f"{m['d_fake']:.2f}")
        left, right = st.columns([1, 1])
        with left:
            live_chart(runner, "samples", lambda r: image_grid(
                r.latest.arrays["samples"], ncols=8, tile_px=32 if lecture_mode() else 48,
                title=_("64 fixed noise vectors at step {step}").format(step=r.latest.step)), f"{KEY}.digits.samples")
        with right:
            live_chart(runner, "hist", lambda r: class_histogram_figure(r.latest.arrays["class_hist"],
                                                                        r.latest.metrics["class_entropy"]),
                       f"{KEY}.digits.hist")
            live_chart(runner, "diversity", lambda r: metric_curves(
                r.history, [(_("diversity"), ["class_entropy", "confidence"])], height=300), f"{KEY}.digits.div")
        loss_panels(runner, [])

    live_run(f"{KEY}.digits", demo, config, current_device(), draw, stage=stage, main_view=lambda r: image_grid(
        r.latest.arrays["samples"], ncols=8, tile_px=48,
        title=_("64 fixed noise vectors at step {step}").format(step=r.latest.step)))


{"2d": page_2d, "1d": page_1d, "digits": page_digits}[view]()
st.query_params["view"] = view
