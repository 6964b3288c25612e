"""Optimizer trajectories
icon: 🏁
SGD, momentum, Nesterov, AdaGrad, RMSProp, Adam and AdamW (torch.optim) race on a surface; schedules, noise, condition number.
"""

import numpy as np
import streamlit as st

from dlviz.analysis.formula import FormulaError
from dlviz.analysis.schedules import SCHEDULE_LATEX
from dlviz.analysis.trajectories import (OPTIMIZERS, TRUE_W, batch_size_paths, condition_study,
                                         distance_to_minima, max_curvature, measured_rate)
from dlviz.demos import get_demo
from dlviz.demos.optimizers import Config, NetConfig, network_plane, resolve_surface
from dlviz.figures.optimizers import (batch_paths_figure, curves_figure, error_curves_figure, label_of,
                                      network_curves_figure,
                                      race_figure, rate_map_figure, schedule_figure, view_around)
from dlviz.runner import RUNNING
from dlviz.ui import (config_form, current_device, explain, global_seed, lecture_mode, live_chart, live_run,
                      part_switch, plain, show)
from dlviz.ui.show import md_table
from dlviz.ui.compute import queued
from dlviz.ui.explanations import OPT_BATCH, OPT_CONDITION, OPT_NETWORK
from dlviz.ui.topics import require_app
from dlviz.i18n import N_, _, tr

require_app(__file__)

KEY = "optimizers"
demo = get_demo("optimizers")
st.title(_("Optimizers: a race on a loss surface"))
# The page's parts: a radio kept in the link (?part=condition), not st.tabs, which has no state (a refresh, or a
# shared link, always opened the race). Each part draws only itself.
PARTS = {"race": N_("🏁 Race"), "condition": N_("📐 Condition number"), "batch": N_("🎲 Mini-batch noise"),
         "network": N_("🧠 Real network")}
part = part_switch(KEY, PARTS)


@st.cache_data(max_entries=32, show_spinner=False)
def surface_grid(surface: str, formula: str, view: tuple, n: int = 90):
    """(X, Y, Z) of the surface on ``view``; a pure function of its arguments, so it is cached."""
    return resolve_surface(Config(surface=surface, formula=formula)).grid(n, bounds=view)


def race_part() -> None:
    stage = st.container()  # figure first: buttons and the race above the controls and the explanation
    config = config_form(demo, KEY, columns=7)
    try:
        surface = resolve_surface(config)
    except FormulaError as exc:
        st.error(_("The formula cannot be used: {plain} (at character {value}). Fix it in the controls above, e.g. `x^2 "
                   "+ 3*y^2` or `sin(x) * cos(y)`.").format(plain=plain(tr(exc.reason)), value=exc.position + 1), icon="✏️")
        surface = None
    chosen = config.entries()
    explain(
        _("Every racer is a **`torch.optim`** optimizer stepping a 2-element parameter from the same start on "
          "**{value}**, with gradients from autograd. The *gradient noise* slider adds Gaussian noise to every "
          "gradient, as a mini-batch estimate would; the schedule scales every learning rate per step (torch's "
          "`lr_scheduler`).").format(value=_(surface.title) if surface else _('your formula')),
        *([surface.latex] if surface else []),
        *([SCHEDULE_LATEX[config.schedule]] if config.schedule != "constant" else []),
        claim=_("On f = 0.1x₁² + 2x₂² gradient descent needs lr < 2/4 = 0.5 for x₂ but then crawls along x₁. "
              "Momentum fixes the imbalance in any orientation. AdaGrad, RMSProp and Adam rescale each coordinate "
              "(a diagonal preconditioner): that fixes it here only because the valley is aligned with the axes; "
              "on the same quadratic turned by 45° (the rotated-quadratic preset) their advantage is gone. At a "
              "saddle, plain gradient descent stalls where momentum, Adam or noise escape."),
    )
    with st.expander(_("Update rules of the racers (the textbook form of what torch.optim does)")):
        for n in chosen:
            st.latex(rf"\text{{{OPTIMIZERS[n].label}:}}\quad {OPTIMIZERS[n].rule}")
    if surface is not None and not chosen:
        st.warning(_("Switch on at least one optimizer in the controls (the toggles in the second row)."), icon="🏁")
    elif surface is not None:
        smooth = st.toggle(_("Animate step by step"), value=True, key=f"{KEY}.smooth",
                           help=_("Off: each refresh computes as many steps as fit in 0.1 s (faster, jumpier)."))

        def notes(runner, surf, a) -> None:
            for n, status in a["status"].items():
                k, lr = a["stopped_at"][n], getattr(runner.config, f"lr_{n}")
                loss = a["losses"][n]
                if status == "diverged":
                    hint = ""
                    if n == "sgd":
                        L = max_curvature(surf.fn, tuple(a["paths"][n][0]))
                        hint = " " + _("The largest curvature at the start is L = {L:.3g}; gradient descent is "
                                       "stable only for lr < 2/L = {limit:.3g}.").format(L=L, limit=2 / L) if L > 0 else ""
                    st.warning(_("**{label_of} diverged** (lr {lr:g}): by step {k} its loss grew from {value:.3g} to {value2:.3g} and "
                                 "it left the picture, so it was stopped. This is the phenomenon, not a bug: each step overshoots by "
                                 "more than it corrects.{hint} Lower its learning rate and press Reset to compare.").format(
                                   label_of=label_of(n),
                                   lr=lr,
                                   k=k,
                                   value=loss[0],
                                   value2=loss[-1],
                                   hint=hint), icon="📈")
                elif status == "escaped":
                    st.info(_("**{label_of} escaped** at step {k}: it left the picture while its loss kept falling ({value:.3g}); "
                              "this surface is unbounded below, so it was stopped there.").format(label_of=label_of(n), k=k, value=loss[-1]),
                            icon="🚀")

        def draw(runner) -> None:
            snap = runner.latest
            if snap is None:
                return
            a = snap.arrays
            surf = resolve_surface(runner.config)
            notes(runner, surf, a)
            # The scrubber sits under the race (the race stays on the first screen); its value is read first.
            scrub = f"{KEY}.scrub.{id(runner.token)}.{snap.step}"
            scrubbing = runner.status != RUNNING and snap.step > 0
            upto = int(st.session_state.get(scrub, snap.step)) if scrubbing else snap.step
            # The step scrubbed to (None: the snapshot's own step, which the live feed follows while it trains).
            at = upto if scrubbing else None
            minima = surf.minima
            f_min = min(surf.value(*m) for m in minima) if minima else None

            def distances(a):
                return {n: distance_to_minima(p, minima) for n, p in a["paths"].items()} if minima else None

            def race(r):  # everything that moves from the snapshot it is given (the live feed gives newer ones)
                a, step = r.latest.arrays, r.latest.step if at is None else at
                # The view holds every racer still in the race (a diverged one runs off the edge).
                racing = [p for n, p in a["paths"].items() if a["status"][n] == "running"]
                view = view_around(surf.bounds, np.concatenate(racing + [a["paths"][next(iter(a["paths"]))][:1]]))
                gx, gy, gz = surface_grid(r.config.surface, r.config.formula, view)
                return race_figure(gx, gy, gz, a["paths"], step, minima, view,
                                   _("{surface}: step {step}, start ({x:.3g}, {y:.3g})").format(
                                       surface=_(surf.title), step=step, x=r.config.start_x, y=r.config.start_y),
                                   height=340 if lecture_mode() else 480)

            def curves(r):
                a = r.latest.arrays
                return curves_figure(a["losses"], distances(a), r.latest.step if at is None else at, f_min)

            dists = distances(a)
            left, right = st.columns([3, 2])
            with left:
                # Figures: built once per snapshot for all the sessions watching the run (shared_view, live_chart);
                # the step a session scrubbed to is part of the key.
                live_chart(runner, "race", race, f"{KEY}.fig_race", at)
                if scrubbing:
                    st.slider(_("Scrub through the steps"), 0, snap.step, snap.step, key=scrub,
                              help=_("Drag to replay the race; press Start (or Resume) to continue."))
            with right:
                rows = []
                for n, p in a["paths"].items():
                    i = min(upto, len(p) - 1)
                    # Python's %g switches to an exponent for tiny values (3.031e-05); the table's own
                    # formatter printed 0.00003031, cut off in the narrow column.
                    status = a["status"][n] if a["status"][n] != "running" and i == len(p) - 1 \
                        else N_("finished") if runner.finished and i == len(p) - 1 else N_("racing")
                    rows.append({_("optimizer"): label_of(n), "f": f"{a['losses'][n][i]:.4g}",
                                 **({_("distance to min"): f"{dists[n][i]:.4g}"} if dists else {}),
                                 _("status"): _(status)})
                md_table(rows, align="lr" + "r" * bool(dists))
                if any(len(v) for v in a["lrs"].values()):
                    live_chart(runner, "schedule", lambda r: schedule_figure(r.latest.arrays["lrs"], r.config.schedule),
                               f"{KEY}.fig_schedule")
            live_chart(runner, "curves", curves, f"{KEY}.fig_curves", at)

        live_run(KEY, demo, config, current_device(), draw, every_s=0.3, pace_s=0.3 if smooth else 0.0, stage=stage)

condition_view = st.cache_data(max_entries=16, show_spinner=False)(condition_study)  # a pure function: shared


def condition_part() -> None:
    explain(OPT_CONDITION.text, *OPT_CONDITION.formulas, claim=OPT_CONDITION.claim)
    kappa = st.select_slider(_("Condition number κ"), [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], value=100,
                             key=f"{KEY}.kappa", format_func=_)
    steps = st.slider(_("Steps"), 20, 300, 100, key=f"{KEY}.cond_steps")
    best, lr_axis, beta_axis, rate, gd, mom = condition_view(kappa, steps)
    c1, c2 = st.columns(2)
    with c1:
        show(rate_map_figure(lr_axis, beta_axis, rate, best), key=f"{KEY}.fig_ratemap")
    with c2:
        hy = 1.3 / np.sqrt(kappa)
        Xq, Yq = np.meshgrid(np.linspace(-0.3, 1.1, 90), np.linspace(-hy, hy, 90))
        show(race_figure(Xq, Yq, 0.5 * (Xq**2 + kappa * Yq**2), {"sgd": gd, "momentum": mom}, minima=[(0.0, 0.0)],
                         title=_("Best GD (η={gd_lr:.3g}), best momentum (η={momentum_lr:.3g}, β={momentum_beta:.3g})").format(
                                   gd_lr=best['gd_lr'],
                                   momentum_lr=best['momentum_lr'],
                                   momentum_beta=best['momentum_beta']), height=420, equal_aspect=False),
             key=f"{KEY}.fig_condpaths")
        st.caption(_("The y axis is stretched √κ-fold: the valley is really that much narrower."))
    errors = {_("gradient descent"): np.linalg.norm(gd, axis=1), _("momentum"): np.linalg.norm(mom, axis=1)}
    show(error_curves_figure(errors), key=f"{KEY}.fig_conderr")
    st.caption(_("Measured over the last half of the run: gradient descent shrinks the error by {measured_rate:.4f} "
                 "per step (theory {gd_rate:.4f}), momentum by {measured_rate2:.4f} (theory {momentum_rate:.4f}).").format(
                   measured_rate=measured_rate(np.linalg.norm(gd, axis=1), steps),
                   gd_rate=best['gd_rate'],
                   measured_rate2=measured_rate(np.linalg.norm(mom, axis=1), steps),
                   momentum_rate=best['momentum_rate']))


@st.cache_data(max_entries=8, show_spinner=_("Training three linear regressions..."))
def regression_paths(steps: int, lr: float, seed: int):
    return batch_size_paths((1, 32, 1000), steps, lr, seed)


def batch_part() -> None:
    explain(OPT_BATCH.text, *OPT_BATCH.formulas, claim=OPT_BATCH.claim)
    c1, c2 = st.columns(2)
    lr_reg = c1.select_slider(_("Learning rate"), [0.003, 0.01, 0.03, 0.1, 0.3], value=0.03, key=f"{KEY}.reg_lr", format_func=_)
    steps_reg = c2.slider(_("Steps"), 20, 500, 200, step=10, key=f"{KEY}.reg_steps")
    runs = regression_paths(steps_reg, lr_reg, global_seed())
    show(batch_paths_figure(runs, TRUE_W), key=f"{KEY}.fig_batch")


def draw_net(runner) -> None:
    snap = runner.latest
    if snap is None:
        return
    live_chart(runner, "curves", lambda r: network_curves_figure(r.history, r.config.names()), f"{KEY}.fig_net_curves")
    ss, cache_key = st.session_state, f"{KEY}.net_plane"
    if st.button(_("Compute the loss plane at this step"), key=f"{KEY}.net_plane_go", disabled=snap.step == 0):
        ss[cache_key] = (runner.token, snap.step, queued(_("Loss on a 25 x 25 grid of the PCA plane"), network_plane,
                                                   runner.config, snap, device=runner.device))
    cached = ss.get(cache_key)
    if cached is None or cached[0] is not runner.token:  # the run's token, not an id(): ids are reused
        st.caption(_("Train a while, then press the button: the parameter paths of all copies are projected onto "
                   "the two directions that explain most of their movement, over the loss in that plane."))
        return
    plane = cached[2]
    e = plane["explained"]
    show(race_figure(plane["A"], plane["B"], plane["L"], plane["coords"], title=_("Shared PCA plane at step {value} (start = the common initialization)").format(value=cached[1]), equal_aspect=False,
                     axis_titles=(_("PC1 ({share:.0%} of the movement)").format(share=e[0]), f"PC2 ({e[1]:.0%})")),
         key=f"{KEY}.fig_net_plane")


def network_part() -> None:
    net_stage = st.container()  # figure first
    explain(OPT_NETWORK.text, *OPT_NETWORK.formulas, claim=OPT_NETWORK.claim)
    c = st.columns([3, 1, 1, 1])
    net_opts = c[0].multiselect(_("Optimizers"), list(OPTIMIZERS), default=["sgd", "momentum", "rmsprop", "adam"],
                                format_func=label_of, key=f"{KEY}.net_opts")
    net_cfg = NetConfig(**{n: n in net_opts for n in OPTIMIZERS}, seed=global_seed(),
                        lr_scale=c[1].select_slider(_("lr scale"), [0.1, 0.3, 1.0, 3.0, 10.0, 30.0], 1.0,
                                                    key=f"{KEY}.net_lr", help=_("multiplies every default rate"), format_func=_),
                        steps=c[2].select_slider(_("steps"), [100, 200, 400, 1000, 2000], 400, key=f"{KEY}.net_steps", format_func=_),
                        batch_size=c[3].select_slider(_("batch size"), [8, 32, 128, 512], 32, key=f"{KEY}.net_batch", format_func=_))
    if not net_opts:
        st.warning(_("Pick at least one optimizer."), icon="🧠")
    else:
        live_run(f"{KEY}_net", get_demo("optimizers-network"), net_cfg, current_device(), draw_net, stage=net_stage)


{"race": race_part, "condition": condition_part, "batch": batch_part, "network": network_part}[part]()
st.query_params["part"] = part
