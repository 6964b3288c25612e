"""The loss-landscape section's heavier views: slices through the trained network's loss (1-D, 2-D, other random
directions), the PCA plane of its path, and the Hessian's extreme eigenvalues; each computed on request through the
server's queue and kept for the run (dlviz.ui.compute.on_request)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ..demos import loss_surfaces as lsd
from ..figures import landscape as lf
from ..i18n import N_, _, tr
from .compute import on_request
from .show import show


def landscape_views(runner, snap) -> None:
    cfg, dev = runner.config, runner.device
    st.subheader(_("Slices of the loss"))
    step, res = on_request("land", N_("slices"), runner, snap.step, lambda: {
        "line": lsd.interpolation(cfg, snap, dev), "plane": lsd.slice_2d(cfg, snap, dev),
        "seeds": [lsd.slice_2d(cfg, snap, dev, seed_offset=k, n=15, test=False)["train"] for k in (1, 2, 3)]})
    if res is not None:
        st.caption(_("At step {step}. The {grid}×{grid} train slice took {grid_seconds:.2f} s; its center equals the "
                     "model's loss ({model_loss:.4f}).").format(
                       step=step,
                       grid=cfg.grid,
                       grid_seconds=res['plane']['grid_seconds'],
                       model_loss=res['plane']['model_loss']))
        show(lf.interpolation_figure(**res["line"]), key="land.line")
        show(lf.slice_figure(res["plane"]["coords"], res["plane"]["train"], res["plane"]["test"]), key="land.plane")
        coords = np.linspace(-cfg.extent, cfg.extent, 15)
        show(lf.seeds_figure(coords, np.stack(res["seeds"]), [cfg.seed + k for k in (1, 2, 3)]), key="land.seeds")
    left, right = st.columns(2)
    with left:
        step, res = on_request("land", N_("PCA path"), runner, snap.step, lambda: lsd.pca_path(cfg, snap, dev))
        if res is not None:
            show(lf.pca_path_figure(res["alphas"], res["betas"], res["losses"], res["coords"], res["explained"]),
                 key="land.pca")
    with right:
        limit = {"threshold": lsd.stability_threshold(cfg.optimizer, cfg.lr),
                 "threshold_label": lsd.THRESHOLD_LABELS.get(cfg.optimizer, "")}
        step, res = on_request("land", N_("curvature"), runner, snap.step, lambda: {
            _("this model (batch {size})").format(size=cfg.batch_size): lsd.curvature(cfg, snap, dev)})
        if res is not None:
            show(lf.curvature_figure(res, **limit), key="land.curv")
            (r,) = res.values()
            st.caption(_("λ_max = {lambda_max:.4g}, λ_min = {lambda_min:.4g} from {products} Hessian-vector products "
                         "(Lanczos) in {seconds:.2f} s. ").format(
                           lambda_max=r['lambda_max'],
                           lambda_min=r['lambda_min'],
                           products=r['products'],
                           seconds=r['seconds'])
                       + tr(lsd.curvature_note(r["lambda_max"], r["lambda_min"])))
        step, res = on_request("land", N_("small vs large batch"), runner, snap.step, lambda: {
            _("batch {bs}").format(bs=bs): r for bs, r in lsd.sharpness_by_batch(cfg, dev).items()})
        if res is not None:
            show(lf.curvature_figure(res, **limit), key="land.batch")
            st.caption(tr(lsd.sharpness_caption(res)))
