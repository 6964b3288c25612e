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
from dlviz.i18n import N_, Msg, _
from dlviz.ui import config_form, current_device, explain, live_chart, live_run, shared_view, show
from dlviz.ui.feature_sources import FeatureSource, publish
from dlviz.ui.topics import require_app

require_app(__file__)

KEY = "mil"
PAGES = Path(__file__).resolve().parent
demo = get_demo("mil")
st.title(_("Multiple-instance learning: which instance decides the bag?"))
stage = st.container()  # figure first: buttons and live curves above the controls
views = st.container()  # the chosen bag's instances and weights, below the curves
config = config_form(demo, KEY)

explain(
    _("In **multiple-instance learning** a label belongs to a *bag* of instances, not to each instance: "
      "here a bag of digits is positive when it holds at least one **{target}** (MNIST-bags, Ilse, Tomczak "
      "& Welling 2018). In pathology a whole-slide image is such a bag: thousands of patches, one "
      "diagnosis for the slide, and a few tumour patches that decide it ('clutter' instances mimic that). "
      "The model never sees which instance is the key one. One encoder maps every instance to $h_k$; a "
      "**permutation-invariant pooling** turns the bag into one vector $z$ (the order of the instances "
      "cannot matter); a linear classifier gives the bag's logit:").format(target=config.target),
    r"h_k = f_\theta(x_k),\qquad z_{\text{mean}} = \frac1n\sum_{k=1}^{n} h_k,\qquad "
    r"z_{\text{max},d} = \max_k h_{kd},\qquad \hat y = \sigma(c^\top z + b)",
    r"z_{\text{att}} = \sum_{k=1}^{n} a_k h_k,\qquad a_k = \frac{\exp\{w^\top \tanh(V h_k)\}}"
    r"{\sum_{j=1}^{n}\exp\{w^\top \tanh(V h_j)\}}",
    r"\text{gated: } a_k \propto \exp\{w^\top(\tanh(V h_k)\odot \operatorname{sigm}(U h_k))\},\qquad "
    r"\mathcal{L} = -y\log\hat y - (1-y)\log(1-\hat y)",
    claim=_("With bags of about 10 digits and one key instance, attention pooling classifies at least 90% of "
            "the test bags within 800 steps, and its largest weight lands on the key digit in at least 80% of the "
            "positive test bags (chance: about 10%). The weights come for free: no instance label was used."),
)


def labels(cfg) -> dict[str, str]:
    """Legend names of the run's poolings, in the reader's language."""
    return {p: _(POOL_LABELS[p]) for p in cfg.pools}


def draw(runner) -> None:
    snap, cfg = runner.latest, runner.config
    if snap is None:
        return
    m = snap.metrics
    live_chart(runner, "curves", lambda r: mil_curves(r.history, r.config.pools, labels(r.config),
                                                      r.latest.metrics["loc_chance"]), f"{KEY}.curves")
    rows = []
    for p in cfg.pools:
        rows.append({_("pooling"): _(POOL_LABELS[p]), _("bag accuracy"): f"{m[p + '_acc']:.1%}",
                     _("AUC"): f"{m[p + '_auc']:.3f}",
                     _("top instance is a key one"): f"{m[p + '_loc']:.0%}" if p + "_loc" in m else _("— (all 1/n)"),
                     _("shuffled bag: max |Δ logit|"): f"{m[p + '_perm_gap']:.1e}"})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(_("Step {step} · {rate:.0f} steps/s · test bags: {test_bags} ({positive:.0%} positive) · chance of "
                 "picking a key instance at random in a positive bag: {chance:.0%}. The last column feeds the first "
                 "{perm_bags:.0f} test bags with their instances shuffled: a permutation-invariant pooling gives "
                 "the same logit up to float rounding.").format(
                   step=snap.step, rate=m.get("steps_per_second", 0), test_bags=cfg.test_bags,
                   positive=m["test_positive_share"], chance=m["loc_chance"], perm_bags=m.get("perm_bags", 16)))


def draw_bag(runner) -> None:
    snap, cfg = runner.latest, runner.config
    if snap is None:
        return
    a = snap.arrays
    n_bags = len(a["show_labels"])
    names = [(_("{i}: positive ({n} instances)") if a["show_labels"][i] > 0 else _("{i}: negative ({n} instances)"))
             .format(i=i, n=int(a["show_sizes"][i])) for i in range(n_bags)]
    i = st.selectbox(_("Test bag"), range(n_bags), format_func=lambda j: names[j], key=f"{KEY}.bag",
                     help=_("The first {n_pos} positive and 4 negative test bags; framed: the target digit.").format(
                         n_pos=N_SHOW - 4))
    i = min(int(i), n_bags - 1)
    n = int(a["show_sizes"][i])
    rel = {p: a[f"{p}_show_rel"][i, :n] for p in cfg.pools}
    probs = ", ".join(f"{_(POOL_LABELS[p])} {a[f'{p}_show_prob'][i]:.2f}" for p in cfg.pools)
    title = (_("Test bag {i} (positive) at step {step}") if a["show_labels"][i] > 0
             else _("Test bag {i} (negative) at step {step}")).format(i=i, step=snap.step)
    show(shared_view(runner, "bag", lambda: bag_figure(
        a["show_images"][i, :n], a["show_keys"][i, :n], rel, labels(cfg), title=title), i),
        key=f"{KEY}.bagfig")
    st.caption(_("P(positive) per pooling: {probs}. Bars: attention weight a_k (attention, gated); max pooling: the "
                 "share of the D features whose maximum this instance supplies; mean: 1/n for all (dotted "
                 "line).").format(probs=probs))
    # Names are Msgs (English keys; the features page shows them with tr()): one entry per run, any language.
    for p in cfg.pools:
        publish(FeatureSource(name=Msg(N_("MIL ({pooling}): instance embeddings h"), pooling=Msg(POOL_LABELS[p])),
                              page=KEY, step=snap.step, config=dataclasses.asdict(cfg), features=a[f"{p}_features"],
                              labels=a["test_digits"], images=a["test_images"],
                              class_names=tuple(str(d) for d in range(10))))
    st.caption(_("The encoders never saw a digit label, only bag labels. Their embeddings h of the test digits are "
                 "on the features page, which measures them with cosine-similarity kNN (defined on the SSL page):"))
    c1, c2 = st.columns(2)
    with c1:
        st.page_link(str(PAGES / "90_features.py"), label=_("Features: kNN on these embeddings"), icon="🔎")
    with c2:
        st.page_link(str(PAGES / "70_ssl.py"), label=_("Self-supervised learning: cosine similarity"), icon="🪞")


live_run(KEY, demo, config, current_device(), draw, draw_slow=draw_bag, stage=stage, views=views,
         main_view=lambda r: mil_curves(r.history, r.config.pools, labels(r.config), r.latest.metrics["loc_chance"]))
