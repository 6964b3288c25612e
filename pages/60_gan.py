"""GAN: a generator against a discriminator
icon: 🎭
Watch a GAN train live in 2-D (the discriminator's field, gradients, warped noise, mode collapse), in 1-D as in the original paper, and on digits.
"""

import streamlit as st

from dlviz.demos import get_demo
from dlviz.demos.gan import VISIT_WINDOW, digit_classifier
from dlviz.figures.common import image_grid, metric_curves
from dlviz.figures.gan import LAYERS, class_histogram_figure, gan_1d_figure, gan_plane_figure
from dlviz.ui import config_form, current_device, explain, live_run, show
from dlviz.ui.topics import require_app

require_app(__file__)

KEY = "gan"
VIEWS = {"2d": "2-D GAN (GAN Lab, and more)", "1d": "1-D: the original paper's picture", "digits": "Digits GAN"}
st.title("GAN: a generator learns to fool a discriminator")
ss = st.session_state
if f"{KEY}.view" not in ss:
    ss[f"{KEY}.view"] = st.query_params.get("view", "2d") if st.query_params.get("view") in VIEWS else "2d"
view = st.radio("Demo", list(VIEWS), format_func=VIEWS.get, horizontal=True, key=f"{KEY}.view",
                on_change=st.query_params.clear, label_visibility="collapsed")
stage = st.container()  # figure first: buttons and the live view above the explanation and the controls

explain(
    "A **generator** G maps noise z to samples; a **discriminator** D scores how real a sample looks. They play "
    "a game (Goodfellow et al., 2014): the lecture's loop takes k steps on D, then one step on G.",
    r"\min_G \max_D\; \mathbb{E}_{x\sim p_{data}}[\log D(x)] + \mathbb{E}_{z\sim p_z}[\log(1 - D(G(z)))]",
    r"D^*(x) = \frac{p_{data}(x)}{p_{data}(x) + p_g(x)} \;\to\; \tfrac12 \text{ when } p_g = p_{data}",
    r"\text{non-saturating: } \min_G -\log D(G(z)); \qquad \text{least squares: } \min_G \tfrac12 (D(G(z)) - 1)^2",
    r"\text{WGAN-GP: } \min_G -f(G(z)),\quad \max_f\; \mathbb{E}f(x) - \mathbb{E}f(G(z)) - \lambda\,(\|\nabla f(\hat x)\| - 1)^2",
    claim="At equilibrium the generator's density equals the data's and the best discriminator outputs 1/2 "
          "everywhere: the field greys out. The minimax generator loss saturates: with D = σ(l), the gradient of "
          "log(1 − D) in l is −D, near 0 exactly when D rejects the fakes (early training); −log D has gradient "
          "−(1 − D), near −1 there. That is why practice uses the non-saturating loss.",
)


def loss_panels(runner, extra):
    show(metric_curves(runner.history, [("losses", ["d_loss", "g_loss"]), ("D on real vs generated",
                                                                          ["d_real", "d_fake"]), *extra]),
         key=f"{KEY}.{view}.curves")


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
        if "modes_covered" in m:
            c = st.columns(3)
            c[0].metric("modes covered", f"{m['modes_covered']:.0f} / {m['modes_total']:.0f}",
                        help="A mode counts when at least 1% of 2,000 samples lie within 3σ of it.")
            c[1].metric("now / visited", f"{m['modes_now']:.0f} / {m['modes_visited']:.0f}",
                        help=f"Modes nearest to at least 1/(2K) of the samples now, and in any snapshot of the last "
                             f"{VISIT_WINDOW} steps: few now but many visited = a clump hopping between modes.")
            c[2].metric("high quality", f"{m['high_quality']:.0%}", help="Within 3σ of some mode.")
        c = st.columns(4)
        c[0].metric("spread", f"{m['spread']:.2f}",
                    help="Total std of the generated samples / the data's: 1 = as spread out, near 0 = collapsed.")
        c[1].metric("JS divergence", f"{m['js']:.3f}",
                    help="Between histograms of 2,000 real and 2,000 generated samples on a 40x40 grid: 0 for equal "
                         "histograms, ln 2 = 0.693 when no cell holds both. Finite samples bias it up (about 0.01 "
                         "for two samples of the ring itself); detail finer than a cell is invisible to it.")
        c[2].metric("mean D(real)" if prob else "mean f(real)", f"{m['d_real']:.2f}")
        c[3].metric("mean D(generated)" if prob else "mean f(generated)", f"{m['d_fake']:.2f}")
        left, right = st.columns([1.3, 1])
        with left:
            show(gan_plane_figure(snap.arrays, prob, shown, title=f"Step {snap.step}"), key=f"{KEY}.2d.plane")
        with right:
            extra = [("modes: covered, now, visited", ["modes_covered", "modes_now", "modes_visited"]),
                     ("quality, spread, JS", ["high_quality", "spread", "js"])] \
                if "modes_covered" in m else [("divergence (grid)", ["js", "kl"]), ("spread", ["spread"])]
            show(metric_curves(runner.history, [("losses", ["d_loss", "g_loss"]),
                                                ("D on real vs generated", ["d_real", "d_fake"])], height=300),
                 key=f"{KEY}.2d.curves")
            show(metric_curves(runner.history, extra, height=300), key=f"{KEY}.2d.quality")
        st.caption("Heatmap: D's output over the plane (green = 'real', purple = 'fake', grey = 1/2). Orange "
                   "segments: the direction G's loss pushes each generated point (-∇ₓ of G's loss, scaled). Thin "
                   "purple lines: G's image of a grid in noise space. Dotted circles: 3σ around each mode. "
                   "Mode collapse (the collapse preset): a clump with a spread near 0 that hits one mode at a time "
                   "but visits many in turn; it can read 0 modes covered while it sits between two modes.")

    live_run(f"{KEY}.2d", demo, config, current_device(), draw, stage=stage)


def page_1d():
    demo = get_demo("gan-1d")
    config = config_form(demo, f"{KEY}.1d")
    st.markdown("Panel (b) of the paper first: D warms up alone and learns to separate the two densities; "
                "then G moves its mass toward the data and D flattens toward 1/2.")

    def draw(runner):
        snap = runner.latest
        if snap is None:
            return
        m = snap.metrics
        c = st.columns(4)
        c[0].metric("|D − ½| on data", f"{m['d_gap']:.3f}")
        c[1].metric("JS divergence", f"{m['js']:.3f}", help="Between histograms of 20,000 real and 20,000 generated "
                    "samples on 100 bins over [-4, 6]: 0 for equal histograms, ln 2 = 0.693 when no bin holds both.")
        cfg = runner.config  # the run's data, not the widgets' (they may have changed since it started)
        c[2].metric("generator mean", f"{m['gen_mean']:.2f}", help=f"data: {cfg.data_mean:.2f}")
        c[3].metric("generator std", f"{m['gen_std']:.2f}", help=f"data: {cfg.data_std:.2f}")
        show(gan_1d_figure(snap.arrays, cfg.data_mean, title=f"Step {snap.step}"), key=f"{KEY}.1d.fig")
        loss_panels(runner, [("|D - 1/2| and JS", ["d_gap", "js"])])

    live_run(f"{KEY}.1d", demo, config, current_device(), draw, stage=stage)


def page_digits():
    demo = get_demo("gan-digits")
    config = config_form(demo, f"{KEY}.digits")
    _, acc = digit_classifier()
    st.markdown(f"Diversity is measured by a small classifier trained once on the real digits (test accuracy "
                f"**{acc:.1%}**): the entropy of its mean prediction over 500 generated digits is ln 10 = 2.30 when "
                "every class is equally common and 0 when the generator draws a single digit.")
    st.latex(r"H\big(\bar p\big) = -\sum_c \bar p_c \log \bar p_c,\quad \bar p = \tfrac1N \sum_i p(y \mid G(z_i));"
             r"\qquad \mathrm{IS} = \exp \mathbb{E}_i\, \mathrm{KL}\big(p(y\mid G(z_i)) \,\|\, \bar p\big)")

    def draw(runner):
        snap = runner.latest
        if snap is None:
            return
        m = snap.metrics
        c = st.columns(4)
        c[0].metric("class entropy", f"{m['class_entropy']:.2f}", help="ln 10 = 2.30 is uniform over digits")
        c[1].metric("inception score", f"{m['inception_score']:.2f}", help="between 1 and 10")
        c[2].metric("confidence", f"{m['confidence']:.0%}", help="mean top probability")
        c[3].metric("mean D(generated)", f"{m['d_fake']:.2f}")
        left, right = st.columns([1, 1])
        with left:
            show(image_grid(snap.arrays["samples"], ncols=8, tile_px=48,
                            title=f"64 fixed noise vectors at step {snap.step}"), key=f"{KEY}.digits.samples")
        with right:
            show(class_histogram_figure(snap.arrays["class_hist"], m["class_entropy"]), key=f"{KEY}.digits.hist")
            show(metric_curves(runner.history, [("diversity", ["class_entropy", "confidence"])], height=300),
                 key=f"{KEY}.digits.div")
        loss_panels(runner, [])

    live_run(f"{KEY}.digits", demo, config, current_device(), draw, stage=stage)


{"2d": page_2d, "1d": page_1d, "digits": page_digits}[view]()
st.query_params["view"] = view
