"""Multiple-instance learning: bags and attention pooling
icon: 🎒
Bags of digits with one label each: mean, max and attention pooling learn which instance decides the bag.
"""

import dataclasses
from pathlib import Path

import pandas as pd
import streamlit as st

from dlviz.demos import get_demo
from dlviz.demos.mil import N_SHOW, POOL_LABELS
from dlviz.figures.mil import bag_figure, mil_curves
from dlviz.ui import config_form, current_device, explain, live_run, shared_view, show
from dlviz.ui.feature_sources import FeatureSource, publish
from dlviz.ui.topics import require_app

require_app(__file__)

KEY = "mil"
PAGES = Path(__file__).resolve().parent
demo = get_demo("mil")
st.title("Multiple-instance learning: which instance decides the bag?")
stage = st.container()  # figure first: buttons and live curves above the controls
views = st.container()  # the chosen bag's instances and weights, below the curves
config = config_form(demo, KEY)

explain(
    "In **multiple-instance learning** a label belongs to a *bag* of instances, not to each instance: here a bag "
    f"of digits is positive when it holds at least one **{config.target}** (MNIST-bags, Ilse, Tomczak & Welling "
    "2018). In pathology a whole-slide image is such a bag: thousands of patches, one diagnosis for the slide, and "
    "a few tumour patches that decide it ('clutter' instances mimic that). The model never sees which instance "
    "is the key one. One encoder maps every instance to $h_k$; a **permutation-invariant pooling** turns the bag "
    "into one vector $z$ (the order of the instances cannot matter); a linear classifier gives the bag's logit:",
    r"h_k = f_\theta(x_k),\qquad z_{\text{mean}} = \frac1n\sum_{k=1}^{n} h_k,\qquad "
    r"z_{\text{max},d} = \max_k h_{kd},\qquad \hat y = \sigma(c^\top z + b)",
    r"z_{\text{att}} = \sum_{k=1}^{n} a_k h_k,\qquad a_k = \frac{\exp\{w^\top \tanh(V h_k)\}}"
    r"{\sum_{j=1}^{n}\exp\{w^\top \tanh(V h_j)\}}",
    r"\text{gated: } a_k \propto \exp\{w^\top(\tanh(V h_k)\odot \operatorname{sigm}(U h_k))\},\qquad "
    r"\mathcal{L} = -y\log\hat y - (1-y)\log(1-\hat y)",
    claim="With bags of about 10 digits and one key instance, attention pooling classifies at least 90% of the "
          "test bags within 800 steps, and its largest weight lands on the key digit in at least 80% of the "
          "positive test bags (chance: about 10%). The weights come for free: no instance label was used.",
)


def labels(cfg) -> dict[str, str]:
    return {p: POOL_LABELS[p] for p in cfg.pools}


def draw(runner) -> None:
    snap, cfg = runner.latest, runner.config
    if snap is None:
        return
    m = snap.metrics
    show(shared_view(runner, "curves", lambda: mil_curves(runner.history, cfg.pools, labels(cfg), m["loc_chance"])),
         key=f"{KEY}.curves")
    rows = []
    for p in cfg.pools:
        rows.append({"pooling": POOL_LABELS[p], "bag accuracy": f"{m[p + '_acc']:.1%}", "AUC": f"{m[p + '_auc']:.3f}",
                     "top instance is a key one": f"{m[p + '_loc']:.0%}" if p + "_loc" in m else "— (all 1/n)",
                     "shuffled bag: max |Δ logit|": f"{m[p + '_perm_gap']:.1e}"})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(f"Step {snap.step} · {m.get('steps_per_second', 0):.0f} steps/s · test bags: "
               f"{cfg.test_bags} ({m['test_positive_share']:.0%} positive) · chance of picking a key instance at "
               f"random in a positive bag: {m['loc_chance']:.0%}. The last column feeds the first "
               f"{m.get('perm_bags', 16):.0f} test bags with their instances shuffled: a permutation-invariant "
               "pooling gives the same logit up to float rounding.")


def draw_bag(runner) -> None:
    snap, cfg = runner.latest, runner.config
    if snap is None:
        return
    a = snap.arrays
    n_bags = len(a["show_labels"])
    names = [f"{i}: {'positive' if a['show_labels'][i] > 0 else 'negative'} ({int(a['show_sizes'][i])} instances)"
             for i in range(n_bags)]
    i = st.selectbox("Test bag", range(n_bags), format_func=lambda j: names[j], key=f"{KEY}.bag",
                     help=f"The first {N_SHOW - 4} positive and 4 negative test bags; framed: the target digit.")
    i = min(int(i), n_bags - 1)
    n = int(a["show_sizes"][i])
    rel = {p: a[f"{p}_show_rel"][i, :n] for p in cfg.pools}
    probs = ", ".join(f"{POOL_LABELS[p]} {a[f'{p}_show_prob'][i]:.2f}" for p in cfg.pools)
    show(shared_view(runner, "bag", lambda: bag_figure(
        a["show_images"][i, :n], a["show_keys"][i, :n], rel, labels(cfg),
        title=f"Test bag {i} ({'positive' if a['show_labels'][i] > 0 else 'negative'}) at step {snap.step}"), i),
        key=f"{KEY}.bagfig")
    st.caption(f"P(positive) per pooling: {probs}. Bars: attention weight a_k (attention, gated); max pooling: the "
               "share of the D features whose maximum this instance supplies; mean: 1/n for all (dotted line).")
    for p in cfg.pools:
        publish(FeatureSource(name=f"MIL ({POOL_LABELS[p]}): instance embeddings h", page=KEY, step=snap.step,
                              config=dataclasses.asdict(cfg), features=a[f"{p}_features"], labels=a["test_digits"],
                              images=a["test_images"], class_names=tuple(str(d) for d in range(10))))
    st.caption("The encoders never saw a digit label, only bag labels. Their embeddings h of the test digits are "
               "on the features page, which measures them with cosine-similarity kNN (defined on the SSL page):")
    c1, c2 = st.columns(2)
    with c1:
        st.page_link(str(PAGES / "90_features.py"), label="Features: kNN on these embeddings", icon="🔎")
    with c2:
        st.page_link(str(PAGES / "70_ssl.py"), label="Self-supervised learning: cosine similarity", icon="🪞")


live_run(KEY, demo, config, current_device(), draw, draw_slow=draw_bag, stage=stage, views=views)
