"""Feature explorer
icon: 🔭
PCA and t-SNE of raw pixels, a random network and the models you trained on the other pages: what did they learn?
"""

import dataclasses

import numpy as np
import pandas as pd
import streamlit as st

from dlviz.analysis.embedding import (HAVE_OPENTSNE, explained_variance, knn_accuracy_loo, nearest_neighbours, pca,
                                      trustworthiness, tsne)
from dlviz.analysis.feature_sets import FeatureSet, from_published, load_builtin, problem, subsample
from dlviz.demos import get_demo
from dlviz.demos.features import PERPLEXITY_GRID, run_on
from dlviz.figures.common import embedding_scatter, image_grid, metric_curves
from dlviz.figures.features import explained_variance_figure, mark_selection, small_multiples
from dlviz.ui import config_form, current_device, explain, global_seed, lecture_mode, live_chart, live_run, show
from dlviz.ui.compute import queued
from dlviz.ui.feature_sources import sources
from dlviz.ui.topics import require_app
from dlviz.i18n import N_, _, tr

require_app(__file__)

KEY = "features"
GRID_POINTS = 600  # the perplexity small multiples embed a seeded subset: four t-SNE runs stay quick
ss = st.session_state
demo = get_demo("tsne")
st.title(_("Feature explorer: what did the models learn?"))
stage = st.container()  # figure first: the live t-SNE (or the PCA) right under the title; the choices below
explain(
    _("**PCA** rotates the centered features onto the directions of largest variance (an SVD) and keeps the top "
    "ones: linear, instant, and distances along the kept axes are real. **t-SNE** (van der Maaten & Hinton, 2008) "
    "turns distances into neighbour probabilities, with a bandwidth per point chosen so each point has "
    "*perplexity* effective neighbours, then moves 2-D/3-D points until a heavy-tailed Student-t similarity "
    "matches them, by gradient descent on the KL divergence:"),
    r"X_c = U S V^\top,\quad Y_{\mathrm{PCA}} = X_c V_k,\quad \text{explained}_i = s_i^2 / \textstyle\sum_j s_j^2",
    r"p_{j|i} = \frac{e^{-\|x_i-x_j\|^2/2\sigma_i^2}}{\sum_{k\ne i} e^{-\|x_i-x_k\|^2/2\sigma_i^2}},\ "
    r"2^{H(P_i)} = \text{perplexity},\quad p_{ij} = \frac{p_{j|i} + p_{i|j}}{2N},",
    r"q_{ij} = \frac{(1+\|y_i-y_j\|^2)^{-1}}{\sum_{k\ne l}(1+\|y_k-y_l\|^2)^{-1}},"
    r"\quad \min_Y \mathrm{KL}(P\,\|\,Q)",
    claim=_("t-SNE keeps who is next to whom (trustworthiness near 1) but not sizes or distances between clusters; "
          "judge features by k-NN accuracy in their own space, and compare raw pixels, a random network and a "
          "trained one."),
)

# -- sources: built-in sets and whatever the other pages published in this session ----------------------------
published = sources()
options = {"pixels": N_("Raw pixels (64-d)"), "random": N_("Random-initialized LeNet (84-d, never trained)")}
# Published names are the other pages' own (marked N_() there): shown translated when the catalogue has them.
options.update({f"session:{name}": _("{name} · step {step}").format(name=tr(name), step=s.step)
                for name, s in published.items()})
choice = st.selectbox(_("Features"), list(options), format_func=lambda k: _(options[k]), key=f"{KEY}.source",
                      help=_("Models trained on other pages in this browser session are listed here."))
if not published:
    st.caption(_("Train a model on another page (the CNN page publishes its 84-d penultimate features) and it "
               "appears in this list."))


@st.cache_data(show_spinner=_("Computing the features..."), max_entries=8)
def builtin_features(name: str, seed: int) -> FeatureSet:
    return load_builtin(name, seed)  # a pure function of (name, seed): safe to share between users


seed = global_seed()
if choice.startswith("session:"):
    src = published[choice.split(":", 1)[1]]
    fs, tag = from_published(src), f"{choice}@{src.step}"
else:
    fs, tag = builtin_features(choice, seed), f"{choice}@seed{seed}"
bad = problem(fs)
if bad:
    st.error(tr(bad), icon="🛑")
    st.stop()
st.caption(_("**{name}**: {len:,} examples × {value} dimensions; {description}.").format(
               name=tr(fs.name),
               len=len(fs.labels),
               value=fs.features.shape[1],
               description=tr(fs.description)))

if f"{KEY}.method" not in ss:  # the link names the method (?method=t-SNE)
    ss[f"{KEY}.method"] = st.query_params.get("method") if st.query_params.get("method") in ("PCA", "t-SNE") else "PCA"
method = st.radio(_("Method"), [N_("PCA"), N_("t-SNE")], horizontal=True, key=f"{KEY}.method",
                  help=_("PCA is instant. t-SNE optimizes for a few seconds; openTSNE shows it forming."), format_func=_)
st.query_params["method"] = method
config = config_form(demo, KEY)  # t-SNE settings; PCA reads only the dimensions
cache = ss.setdefault(f"{KEY}._cache", {})


def cached(key: tuple, fn):
    """Per-session memo for the metrics (bounded: the oldest entries go first)."""
    if key not in cache:
        if len(cache) > 24:
            cache.pop(next(iter(cache)))
        cache[key] = fn()
    return cache[key]


def pick_point():
    """Chart selection -> the inspector's example number (a callback runs before the widgets are drawn)."""
    points = (ss.get(f"{KEY}.emb") or {}).get("selection", {}).get("points", [])
    ids = [int(p["customdata"]) for p in points if "customdata" in p]
    if ids:
        ss[f"{KEY}.point"] = ids[0]


def view(fs: FeatureSet, tag: str, coords: np.ndarray, title: str, final: bool) -> None:
    """Metrics, the embedding with the inspector, and the CSV export, for coordinates of ``fs`` (named ``tag``)."""
    c = st.columns(3)
    knn_orig = cached((tag, "knn"), lambda: knn_accuracy_loo(fs.features, fs.labels))
    c[0].metric(_("5-NN accuracy, original space"), f"{knn_orig:.1%}",
                help=_("Leave-one-out: each example is classified by a vote of its 5 nearest others."))
    if final:
        key = (tag, method, coords.shape[1], float(np.abs(coords).sum()))
        knn_emb = cached(key + ("knn",), lambda: knn_accuracy_loo(coords, fs.labels))
        trust = cached(key + ("trust",), lambda: trustworthiness(fs.features, coords))
        c[1].metric(_("5-NN accuracy, embedding"), f"{knn_emb:.1%}")
        c[2].metric(_("trustworthiness (k=5)"), f"{trust:.3f}",
                    help=_("1 when every embedding neighbour is also a near neighbour in the original space."))
    else:
        c[1].metric(_("5-NN accuracy, embedding"), "…")
        c[2].metric(_("trustworthiness (k=5)"), "…")
    n = len(fs.labels)
    if int(ss.get(f"{KEY}.point", 0)) > n - 1:  # a smaller source than the last one
        ss[f"{KEY}.point"] = n - 1
    point = int(ss.get(f"{KEY}.point", 0))
    nbrs = cached((tag, "nn", point), lambda: nearest_neighbours(fs.features, 8, point))
    hover = [f"#{i}: {fs.class_names[int(fs.labels[i])]}" for i in range(n)]
    fig = mark_selection(embedding_scatter(coords, fs.labels, title, hover, fs.class_names,
                                             height=420 if lecture_mode() else 520),  # lecture: its ten
                         # classes and two markers in a column fit (at 330 px the last classes were cut)
                         coords, point, nbrs)
    left, right = st.columns([3, 2])
    with left:
        show(fig, key=f"{KEY}.emb", on_select=pick_point, selection_mode="points")
    with right:
        st.number_input(_("Inspect example #"), 0, n - 1, key=f"{KEY}.point",
                        help=_("Or click a point in the 2-D plot."))
        same = int((fs.labels[nbrs] == fs.labels[point]).sum())
        st.markdown(_("Example **#{point}** (label **{value}**): **{same} of {len}** nearest neighbours *in the original "
                      "space* share its label (ringed in the plot).").format(
                        point=point,
                        value=fs.class_names[int(fs.labels[point])],
                        same=same,
                        len=len(nbrs)))
        ids = [point, *nbrs.tolist()]
        names = ["selected"] + [f"#{i}: {fs.class_names[int(fs.labels[i])]}" for i in nbrs]
        if fs.images is not None:
            show(image_grid(fs.images[ids], names, ncols=3, tile_px=80), key=f"{KEY}.nbrs")
        else:
            st.dataframe(pd.DataFrame({"example": ids, "label": [fs.class_names[int(fs.labels[i])] for i in ids]}))
    frame = pd.DataFrame(coords, columns=["x", "y", "z"][:coords.shape[1]])
    frame.insert(0, "label", [fs.class_names[int(v)] for v in fs.labels])
    frame.insert(0, "example", np.arange(n))
    fname = f"{method.lower()}_{tag.rsplit('@', 1)[0].split(':')[-1][:30]}.csv"
    st.download_button(_("Download coordinates (CSV)"), frame.to_csv(index=False), fname, "text/csv", key=f"{KEY}.csv")


if method == "PCA":
    coords, _unused = pca(fs.features, config.n_components)
    ratio = explained_variance(fs.features, 20)
    with stage:
        view(fs, tag, coords, _("PCA of {name}: PC1 {pc1:.0%}, PC2 {pc2:.0%} of the variance").format(
            name=tr(fs.name), pc1=ratio[0], pc2=ratio[1]), True)
    show(explained_variance_figure(ratio), key=f"{KEY}.var")
else:
    if config.engine == "openTSNE" and not HAVE_OPENTSNE:
        st.warning(_("openTSNE is not installed (`pip install openTSNE`), so scikit-learn computes the embedding in "
                   "one call: you see the start and the result, not the optimization."), icon="📦")
    st.caption(_("Engine: openTSNE is used for the live view because, measured on the 1,797 digits, it costs about "
               "the same time per iteration as scikit-learn's Barnes-Hut t-SNE and keeps its optimizer state "
               "between chunks, so the embedding can be drawn as it forms. scikit-learn is the fallback."))
    live_demo = dataclasses.replace(demo, run=lambda cfg, device, fs=fs: run_on(fs, cfg))
    tsne_config = dataclasses.replace(config, source=tag, n_points=len(fs.labels))
    # The features each run embeds, by its source tag: a run keeps going when another source is picked (its
    # figures must not mix its coordinates with the new source's labels) until Reset.
    run_sets = ss.setdefault(f"{KEY}._run_sets", {})
    run_sets.pop(tag, None)
    run_sets[tag] = fs
    while len(run_sets) > 4:
        run_sets.pop(next(iter(run_sets)))

    def draw(runner) -> None:
        snap = runner.latest
        if snap is None:
            return
        final = bool(snap.arrays.get("final"))
        m, run_fs = snap.metrics, run_sets.get(runner.config.source)
        if run_fs is None or len(run_fs.labels) != len(snap.arrays["coords"]):
            st.info(_("This run's features are gone (another source was picked): press Reset."))
            return
        st.caption(_("iteration {step} of {iterations} · {seconds:.1f} s of t-SNE").format(
                       step=snap.step,
                       iterations=runner.config.iterations,
                       seconds=m['seconds'])
                   + (_(" · KL divergence {kl_divergence:.3f}").format(kl_divergence=m['kl_divergence']) if np.isfinite(m["kl_divergence"]) else "")
                   + ("" if final or snap.step else _(" · press **Start** to optimize")))
        view(run_fs, runner.config.source, snap.arrays["coords"],
             _("t-SNE at iteration {step}").format(step=snap.step) + (_(" (final)") if final else ""), final)
        rows = [r for r in runner.history if np.isfinite(r.get("kl_divergence", np.nan))]
        if len(rows) > 2:
            live_chart(runner, "kl", lambda r: metric_curves(
                [h for h in r.history if np.isfinite(h.get("kl_divergence", np.nan))],
                [(_("KL(P‖Q) as t-SNE optimizes"), ["kl_divergence"])], x="iteration", height=250), f"{KEY}.kl")

    # A slower refresh than training pages: each redraw sends 1,797 points; on a busy machine the browser needed
    # more than 0.6 s to draw them (the plot stayed blank at a 0.6 s period, drew at 2.5 s; measured).
    live_run(KEY, live_demo, tsne_config, current_device(), draw, every_s=1.2, stage=stage)

# -- small multiples over perplexity --------------------------------------------------------------------------
st.subheader(_("The same data at perplexity 5, 30, 50 and 100"))
grid_key = (tag, "grid", config.seed)
if st.button(_("Compute four t-SNE embeddings ({min} examples)").format(min=min(GRID_POINTS, len(fs.labels))), key=f"{KEY}.grid_go"):
    part = subsample(fs, GRID_POINTS, config.seed)
    ss[f"{KEY}._grid"] = (grid_key, part.labels, queued(_("Four t-SNE runs (scikit-learn)"), lambda: [
        tsne(part.features, 2, p, config.seed, max_iter=500) for p in PERPLEXITY_GRID]))
left, right = st.columns([4, 1])
grid = ss.get(f"{KEY}._grid")
with left:
    if grid is not None and grid[0] == grid_key:
        show(small_multiples(grid[2], grid[1], [_("perplexity {p}").format(p=p) for p in PERPLEXITY_GRID], fs.class_names),
             key=f"{KEY}.grid")
    else:
        st.info(_("Press the button to embed a subset of these features at four perplexities."))
with right:
    st.markdown(_("**t-SNE can mislead.** Low perplexity breaks classes into clumps that mean nothing; high "
                "perplexity merges them. Cluster **sizes** say nothing about spread (t-SNE evens out density) and "
                "**distances between clusters** mean little. Trust who is next to whom; check anything else "
                "in the original space (the k-NN accuracy above)."))
