"""Optimizer trajectories
icon: 🏁
SGD, momentum, Nesterov, AdaGrad, RMSProp, Adam and AdamW (torch.optim) race on a surface; schedules, noise, condition number.
"""

import numpy as np
import pandas as pd
import streamlit as st

from dlviz.analysis.formula import FormulaError
from dlviz.analysis.schedules import SCHEDULE_LATEX
from dlviz.analysis.trajectories import (OPTIMIZERS, TRUE_W, batch_size_paths, condition_quadratic,
                                         distance_to_minima, max_curvature, optimal_settings, quadratic_rate,
                                         trajectory)
from dlviz.demos import get_demo
from dlviz.demos.optimizers import Config, resolve_surface
from dlviz.figures.optimizers import (batch_paths_figure, curves_figure, error_curves_figure, label_of,
                                      race_figure, rate_map_figure, schedule_figure)
from dlviz.runner import RUNNING
from dlviz.ui import config_form, current_device, explain, live_run, show
from dlviz.ui.topics import require_app

require_app(__file__)

KEY = "optimizers"
demo = get_demo("optimizers")
st.title("Optimizers: a race on a loss surface")
config = config_form(demo, KEY, columns=7)


@st.cache_data(max_entries=16, show_spinner=False)
def surface_grid(surface: str, formula: str, start_x: float, start_y: float, n: int = 120):
    """(X, Y, Z) over the surface's view widened to show the start point, and that view."""
    surf = resolve_surface(Config(surface=surface, formula=formula, start_x=start_x, start_y=start_y))
    x0, x1, y0, y1 = surf.bounds
    pad_x, pad_y = 0.05 * (x1 - x0), 0.05 * (y1 - y0)
    view = (min(x0, start_x - pad_x), max(x1, start_x + pad_x), min(y0, start_y - pad_y), max(y1, start_y + pad_y))
    return (*surf.grid(n, bounds=view), view)


race_tab, cond_tab, batch_tab = st.tabs(["🏁 Race", "📐 Condition number", "🎲 Mini-batch noise"])

with race_tab:
    try:
        surface = resolve_surface(config)
    except FormulaError as exc:
        st.error(f"The formula cannot be used: {exc.reason} (at character {exc.position + 1}). Fix it in the "
                 "controls above, e.g. `x^2 + 3*y^2` or `sin(x) * cos(y)`.", icon="✏️")
        surface = None
    chosen = config.entries()
    explain(
        f"Every racer is a **`torch.optim`** optimizer stepping a 2-element parameter from the same start on "
        f"**{surface.title if surface else 'your formula'}**. Gradients come from autograd; the *gradient noise* "
        "slider adds Gaussian noise to them, the way a mini-batch estimate would. The update rules:",
        *([surface.latex] if surface else []),
        *(rf"\text{{{OPTIMIZERS[n].label}:}}\quad {OPTIMIZERS[n].rule}" for n in chosen),
        *([SCHEDULE_LATEX[config.schedule]] if config.schedule != "constant" else []),
        claim="On f = 0.1x₁² + 2x₂² gradient descent needs lr < 2/4 = 0.5 for x₂ but then crawls along x₁; "
              "momentum and adaptive methods fix the imbalance. At a saddle, plain gradient descent stalls "
              "where momentum, Adam or noise escape.",
    )
    if surface is not None and not chosen:
        st.warning("Switch on at least one optimizer in the controls (the toggles in the second row).", icon="🏁")
    elif surface is not None:
        X, Y, Z, view = surface_grid(config.surface, config.formula, config.start_x, config.start_y)
        smooth = st.toggle("Animate step by step", value=True, key=f"{KEY}.smooth",
                           help="Off: each refresh computes as many steps as fit in 0.15 s (faster, jumpier).")

        def notes(runner, surf, a) -> None:
            for n, status in a["status"].items():
                k, lr = a["stopped_at"][n], getattr(runner.config, f"lr_{n}")
                loss = a["losses"][n]
                if status == "diverged":
                    hint = ""
                    if n == "sgd":
                        L = max_curvature(surf.fn, tuple(a["paths"][n][0]))
                        hint = (f" The largest curvature at the start is L = {L:.3g}; gradient descent is stable "
                                f"only for lr < 2/L = {2 / L:.3g}.") if L > 0 else ""
                    st.warning(f"**{label_of(n)} diverged** (lr {lr:g}): by step {k} its loss grew from "
                               f"{loss[0]:.3g} to {loss[-1]:.3g} and it left the picture, so it was stopped. "
                               f"This is the phenomenon, not a bug: each step overshoots by more than it "
                               f"corrects.{hint} Lower its learning rate and press Reset to compare.", icon="📈")
                elif status == "escaped":
                    st.info(f"**{label_of(n)} escaped** at step {k}: it left the picture while its loss kept "
                            f"falling ({loss[-1]:.3g}); this surface is unbounded below, so it was stopped there.",
                            icon="🚀")

        def draw(runner) -> None:
            snap = runner.latest
            if snap is None:
                return
            a = snap.arrays
            surf = resolve_surface(runner.config)
            gx, gy, gz, gview = surface_grid(runner.config.surface, runner.config.formula, runner.config.start_x,
                                             runner.config.start_y)
            notes(runner, surf, a)
            upto = snap.step
            if runner.status != RUNNING and snap.step > 0:
                upto = st.slider("Scrub through the steps", 0, snap.step, snap.step,
                                 key=f"{KEY}.scrub.{id(runner)}.{snap.step}",
                                 help="Drag to replay the race; press Start (or Resume) to continue.")
            minima = surf.minima
            dists = {n: distance_to_minima(p, minima) for n, p in a["paths"].items()} if minima else None
            f_min = min(surf.value(*m) for m in minima) if minima else None
            left, right = st.columns([3, 2])
            with left:
                show(race_figure(gx, gy, gz, a["paths"], upto, minima, gview,
                                 f"{surf.title}: step {upto}"), key=f"{KEY}.race")
            with right:
                rows = []
                for n, p in a["paths"].items():
                    i = min(upto, len(p) - 1)
                    rows.append({"optimizer": label_of(n), "x": p[i, 0], "y": p[i, 1], "f": a["losses"][n][i],
                                 **({"distance to min": dists[n][i]} if dists else {}),
                                 "status": a["status"][n] if i == len(p) - 1 else "racing"})
                st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                             column_config={c: st.column_config.NumberColumn(format="%.4g")
                                            for c in ("x", "y", "f", "distance to min")})
                if any(len(v) for v in a["lrs"].values()):
                    show(schedule_figure(a["lrs"], runner.config.schedule), key=f"{KEY}.schedule")
            show(curves_figure(a["losses"], dists, upto, f_min), key=f"{KEY}.curves")

        live_run(KEY, demo, config, current_device(), draw, budget_s=0.0 if smooth else 0.15,
                 every_s=0.12 if smooth else 0.25)

with cond_tab:
    explain(
        "On a quadratic with curvatures 1 and κ every optimizer's error shrinks by a fixed factor per step, the "
        "**rate**. Gradient descent's best fixed learning rate balances the two directions; heavy-ball momentum's "
        "best (η, β) makes both directions contract equally fast (Goh, *Why Momentum Really Works*, 2017):",
        r"f(x, y) = \tfrac12 (x^2 + \kappa y^2),\qquad \eta^\star_{GD} = \frac{2}{1+\kappa},\ "
        r"\text{rate} = \frac{\kappa-1}{\kappa+1};\qquad \eta^\star = \Big(\frac{2}{1+\sqrt\kappa}\Big)^2,\ "
        r"\beta^\star = \Big(\frac{\sqrt\kappa-1}{\sqrt\kappa+1}\Big)^2,\ \text{rate} = \frac{\sqrt\kappa-1}{\sqrt\kappa+1}",
        claim="Momentum's rate depends on √κ instead of κ: at κ = 100 gradient descent needs about 10x more steps "
              "per digit of accuracy.",
    )
    kappa = st.select_slider("Condition number κ", [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], value=100,
                             key=f"{KEY}.kappa")
    best = optimal_settings(kappa)
    lr_axis = np.linspace(0, 2.2 * max(best["gd_lr"], best["momentum_lr"]), 161)[1:]
    beta_axis = np.linspace(0, 0.99, 100)
    rate = quadratic_rate(lr_axis[None, :], beta_axis[:, None], (1.0, float(kappa)))
    fq = condition_quadratic(float(kappa))
    steps = st.slider("Steps", 20, 300, 100, key=f"{KEY}.cond_steps")
    gd = trajectory(fq, (1.0, 1.0), "sgd", steps, best["gd_lr"])
    mom = trajectory(fq, (1.0, 1.0), "momentum", steps, best["momentum_lr"], beta=best["momentum_beta"])
    c1, c2 = st.columns(2)
    with c1:
        show(rate_map_figure(lr_axis, beta_axis, rate, best), key=f"{KEY}.ratemap")
    with c2:
        half = 1.1
        xs = np.linspace(-half, half, 100)
        Xq, Yq = np.meshgrid(xs, xs)
        show(race_figure(Xq, Yq, 0.5 * (Xq**2 + kappa * Yq**2), {"sgd": gd, "momentum": mom}, minima=[(0.0, 0.0)],
                         title=f"Best GD (η={best['gd_lr']:.3g}) and best momentum (η={best['momentum_lr']:.3g}, "
                               f"β={best['momentum_beta']:.3g})", height=420), key=f"{KEY}.condpaths")
    errors = {"gradient descent": np.linalg.norm(gd, axis=1), "momentum": np.linalg.norm(mom, axis=1)}
    show(error_curves_figure(errors), key=f"{KEY}.conderr")
    st.caption(f"Measured over the last half of the run: gradient descent shrinks the error by "
               f"{(errors['gradient descent'][-1] / errors['gradient descent'][steps // 2]) ** (1 / (steps - steps // 2)):.4f} "
               f"per step (theory {best['gd_rate']:.4f}), momentum by "
               f"{(max(errors['momentum'][-1], 1e-300) / errors['momentum'][steps // 2]) ** (1 / (steps - steps // 2)):.4f} "
               f"(theory {best['momentum_rate']:.4f}).")


@st.cache_data(max_entries=8, show_spinner="Training three linear regressions...")
def regression_paths(steps: int, lr: float, seed: int):
    return batch_size_paths((1, 32, 1000), steps, lr, seed)


with batch_tab:
    explain(
        "Linear regression on 1,000 points, y = 2x₁ − 3.4x₂ + 4.2 + noise, trained by `torch.optim.SGD` from "
        "w = 0 with the same learning rate and number of steps; only the batch size differs. A mini-batch "
        "gradient is an unbiased but noisy estimate of the full gradient; its noise shrinks like 1/√B:",
        r"\hat g_B = \frac{1}{B}\sum_{i \in \mathcal{B}} \nabla_w \tfrac12 (w^\top x_i + b - y_i)^2,\qquad "
        r"\mathbb{E}[\hat g_B] = \nabla L(w),\quad \operatorname{Var}[\hat g_B] \propto \tfrac1B",
        claim="Batch size 1 wanders around the full-batch path and keeps jittering near the minimum; batch 32 is "
              "already close to the full-batch path at 1/30 of its cost per step.",
    )
    c1, c2 = st.columns(2)
    lr_reg = c1.select_slider("Learning rate", [0.003, 0.01, 0.03, 0.1, 0.3], value=0.03, key=f"{KEY}.reg_lr")
    steps_reg = c2.slider("Steps", 20, 500, 200, step=10, key=f"{KEY}.reg_steps")
    runs = regression_paths(steps_reg, lr_reg, int(config.seed))
    show(batch_paths_figure(runs, TRUE_W), key=f"{KEY}.batch")
