"""Loss surfaces and saddle points
icon: ⛰️
Critical points classified by their Hessian, descent stalling at a saddle, MSE vs cross-entropy, and real landscapes.
"""

import numpy as np
import pandas as pd
import streamlit as st

from dlviz.analysis.critical_points import curve_critical_points, mse_vs_cross_entropy, probe
from dlviz.analysis.formula import FormulaError
from dlviz.analysis.surfaces import CURVES
from dlviz.demos import get_demo
from dlviz.demos import loss_surfaces as lsd
from dlviz.figures import surfaces as sf
from dlviz.figures.common import metric_curves
from dlviz.ui import (config_form, current_device, explain, lecture_mode, live_chart, live_run, metric_row, plain,
                      show)
from dlviz.ui.explanations import SURF_LANDSCAPE, SURF_MSE_CE
from dlviz.ui.formula_messages import analysis_failed, formula_unreadable
from dlviz.ui.landscape_views import landscape_views
from dlviz.ui.topics import require_app
from dlviz.i18n import N_, _

require_app(__file__)

st.title(_("Loss surfaces and saddle points"))
SECTIONS = [N_("Critical points and saddles"), N_("MSE vs cross-entropy"), N_("Landscape of a real network")]
ss = st.session_state
SECTION_SLUGS = dict(zip(["critical-points", "mse-ce", "landscape"], SECTIONS))
if "surf.section" not in ss:  # the link names the part shown (?section=landscape)
    ss["surf.section"] = SECTION_SLUGS.get(st.query_params.get("section", ""), SECTIONS[0])
section = st.segmented_control(_("Part"), SECTIONS, key="surf.section", format_func=_) or SECTIONS[0]
st.query_params["section"] = next(k for k, v in SECTION_SLUGS.items() if v == section)


def _surface_key(config) -> tuple:
    """What decides the surface of a critical-points config (the formula counts only for 'custom')."""
    return config.surface, config.formula if config.surface == "custom" else ""


def critical_points_section() -> None:
    KEY, demo = "surf", get_demo("critical-points")
    stage = st.container()  # figure first: buttons and the live view above the controls
    config = config_form(demo, KEY)
    try:
        surface = lsd.surface_for(config)
        points = lsd.critical_points_for(config)
    except FormulaError as exc:
        formula_unreadable(exc, config.formula)
        return
    except Exception as exc:  # overflow, a function autograd cannot differentiate...: a message, not a traceback
        analysis_failed(config, exc)
        return
    explain(
        _("At a **critical point** the gradient is zero. The Hessian (matrix of second derivatives) decides what it "
        "is: all eigenvalues positive, a minimum; all negative, a maximum; mixed signs, a **saddle**; a zero "
        "eigenvalue, degenerate (second order cannot tell). Near a critical point x*, with H = Σ λᵢ vᵢvᵢᵀ:"),
        r"f(x^* + \delta) \approx f(x^*) + \tfrac12 \delta^\top H \delta = f(x^*) + \tfrac12 \sum_i \lambda_i "
        r"(v_i^\top \delta)^2",
        r"\delta_{t+1} = (I - \eta H)\,\delta_t \;\Rightarrow\; v_i^\top\delta_t = (1 - \eta\lambda_i)^t\, "
        r"v_i^\top\delta_0",
        claim=_("Gradient descent started a hair off a saddle crawls (tiny gradient) until the component along the "
              "negative-eigenvalue eigenvector has grown by (1 + η|λ|)ᵗ; one step along that eigenvector lowers the "
              "loss at once. Points are found by Newton's method from a 21×21 grid of starts."))
    st.latex(surface.latex)
    xmin, xmax, ymin, ymax = surface.bounds
    c = st.columns([1, 1, 1])
    px = c[0].slider(_("probe x"), float(xmin), float(xmax), float((xmin + xmax) / 2 + 0.13 * (xmax - xmin)),
                     key=f"{KEY}.px")
    py = c[1].slider(_("probe y"), float(ymin), float(ymax), float((ymin + ymax) / 2 + 0.21 * (ymax - ymin)),
                     key=f"{KEY}.py")
    with c[2]:
        show_field = st.toggle(_("gradient field (arrows of −∇f)"), key=f"{KEY}.field")
    try:
        with np.errstate(all="ignore"):
            X, Y, Z = surface.grid(80)
        at = probe(surface, px, py, field_n=15 if show_field else 0)
    except Exception as exc:
        analysis_failed(config, exc)
        return
    if not np.isfinite(Z).any():
        st.warning(plain(_("f(x, y) = {strip} is undefined (NaN or infinite) everywhere in the view: change the formula.").format(strip=config.formula.strip())), icon="✏️")
    elif not np.isfinite(Z).all():
        st.warning(_("The formula is undefined (NaN or infinite) in part of the view: those areas are left blank."))
    m = st.columns(4)
    m[0].metric(_("f at the probe"), f"{at.f:.4g}")
    m[1].metric(_("gradient"), f"({at.grad[0]:.3g}, {at.grad[1]:.3g})")
    m[2].metric("|∇f|", f"{np.linalg.norm(at.grad):.3g}")
    m[3].metric(_("Hessian eigenvalues"), f"{at.eigenvalues[0]:.3g}, {at.eigenvalues[1]:.3g}")
    crit = [p.as_dict() for p in points]
    show(sf.surface_figure(X, Y, Z, crit, probe=(px, py), field=at.field, revision=config.surface),
         key=f"{KEY}.fig")
    counts = pd.Series([p["kind"] for p in crit]).value_counts().to_dict() if crit else {}
    st.caption(_("**{len} critical points** in view: ").format(len=len(crit))
               + (", ".join(f"{v} {_(k)}" for k, v in counts.items()) or _("none")) + ". " + _(surface.note))
    with st.expander(_("Critical points (table) and two 1-D curves")):
        st.dataframe(pd.DataFrame(crit), hide_index=True)
        curves = []
        for cv in CURVES.values():
            xs, ys = cv.grid()
            curves.append((_(cv.title), xs, ys, curve_critical_points(cv)))
        show(sf.curves_figure(curves), key=f"{KEY}.curves")
        st.caption(_("x³ has f' = f'' = 0 at 0 and is no extremum; x·cos(πx) has two minima of different depth."))

    def draw(runner) -> None:
        snap = runner.latest
        if snap is None:
            return
        a = snap.arrays
        # The run's surface: the controls may have picked another one since it started (Reset applies them).
        if _surface_key(runner.config) == _surface_key(config):
            run_grid, run_crit = (X, Y, Z), crit
        else:
            try:
                with np.errstate(all="ignore"):
                    run_grid = lsd.surface_for(runner.config).grid(80)
                    run_crit = [p.as_dict() for p in lsd.critical_points_for(runner.config)]
            except Exception as exc:
                analysis_failed(runner.config, exc)
                return

        def paths_figure(r):  # from the snapshot it is given (the live feed calls it later, with newer ones)
            a = r.latest.arrays
            paths = {_("a hair off the saddle"): a["path"]}
            if "escape_path" in a:
                paths[_("escape step")] = a["escape_path"]  # as the curves beside it name it: a short legend
            return sf.contour_paths_figure(*run_grid, run_crit, paths, a["pivot"], a["eigenvectors"],
                                           a["eigenvalues"], height=320 if lecture_mode() else 420)

        left, right = st.columns([1, 1])
        with left:
            # Built once per snapshot for all the sessions watching the run (shared_view, live_chart).
            live_chart(runner, "paths", paths_figure, f"{KEY}.paths")
        with right:
            live_chart(runner, "descent", lambda r: sf.descent_curves(r.history, height=260 if lecture_mode() else 300),
                       f"{KEY}.descent")
            if snap.metrics["lr_used"] < runner.config.lr:
                st.caption(_("Step size capped at {lr_used:.3g} = 1 / (largest curvature at a critical point) so that descent is "
                             "stable on this surface.").format(lr_used=snap.metrics['lr_used']))
            if a["eigenvectors"] is None:
                st.info(_("This surface has no saddle in view: descent starts from the surface's start point."))

    st.subheader(_("Gradient descent near a saddle"))
    live_run(KEY, demo, config, current_device(), draw, stage=stage)


def mse_ce_section() -> None:
    KEY = "mse"
    explain(SURF_MSE_CE.text, *SURF_MSE_CE.formulas, claim=SURF_MSE_CE.claim)
    c = st.columns(3)
    lr = c[0].select_slider(_("learning rate"), [0.01, 0.03, 0.1, 0.2, 0.5, 1.0], value=0.1, key=f"{KEY}.lr", format_func=_)
    steps = c[1].slider(_("steps"), 10, 500, 200, key=f"{KEY}.steps")
    corner = c[2].slider(_("start (w₁, w₂) = (s, −s)"), 1.0, 4.0, 3.0, 0.5, key=f"{KEY}.corner")
    surfaces, paths, losses, grads = mse_vs_cross_entropy(corner, lr, steps)
    show(sf.loss_pair_figure(surfaces, paths), key=f"{KEY}.pair")
    show(sf.loss_steps_figure(losses, grads), key=f"{KEY}.steps_fig")
    (mse_name, ce_name) = list(losses)
    st.caption(_("At the start the gradient norm is {value:.3g} under MSE and {value2:.3g} under cross-entropy; after "
                 "{steps} steps the losses are {value3:.3g} and {value4:.3g}.").format(
                   value=grads[mse_name][0],
                   value2=grads[ce_name][0],
                   steps=steps,
                   value3=losses[mse_name][-1],
                   value4=losses[ce_name][-1]))


def landscape_section() -> None:
    KEY, demo = "land", get_demo("landscape")
    stage = st.container()  # figure first: buttons and the live view above the controls
    config = config_form(demo, KEY)
    explain(SURF_LANDSCAPE.text, *SURF_LANDSCAPE.formulas, claim=SURF_LANDSCAPE.claim)

    def draw(runner) -> None:
        snap = runner.latest
        if snap is None:
            return
        m = snap.metrics
        metric_row({_("train loss (1,024)"): f"{m['landscape_loss']:.3f}", _("test accuracy"): f"{m['test_acc']:.1%}",
                    _("step"): f"{snap.step} / {runner.config.steps}",
                    "‖θ − θ₀‖": f"{m['distance_from_init']:.2f}"})
        live_chart(runner, "curves", lambda r: metric_curves(
            r.history, [(_("loss"), ["train_loss", "test_loss"]), (_("accuracy"), ["train_acc", "test_acc"])],
            height=255 if lecture_mode() else 320), f"{KEY}.curves")
        landscape_views(runner, snap)  # the slices, PCA path and curvature, computed on request

    live_run(KEY, demo, config, current_device(), draw, stage=stage)


{SECTIONS[0]: critical_points_section, SECTIONS[1]: mse_ce_section, SECTIONS[2]: landscape_section}[section]()
