"""CLIP: images and captions in one space
icon: 🔗
A tiny CLIP learns from captioned coloured digits, then reads digits zero-shot from prompts it never saw.
"""

import numpy as np
import streamlit as st
import torch

from dlviz.data.captions import (COLOUR_NAMES, MAX_LEN, POSITIONS, PROMPT_TEMPLATES, SIZE_NAMES, VOCAB, WORDS,
                                 caption, load_caption_data, prompts, tokenize, tokenize_all)
from dlviz.demos import get_demo
from dlviz.demos.clip import TEXT_DIM
from dlviz.figures.clip import clip_curves, joint_pca_figure, ranking_figure, rgb_tiles, similarity_figure, template_bars
from dlviz.models.clip import load_text_tower
from dlviz.ui import config_form, current_device, explain, lecture_mode, live_chart, live_run, plain, shared_view, show
from dlviz.ui.topics import require_app
from dlviz.i18n import _, current_language

require_app(__file__)

KEY = "clip"
demo = get_demo("clip")
st.title(_("CLIP: images and captions in one space"))
stage = st.container()  # figure first: buttons and the live view above the controls
config = config_form(demo, KEY)
views = st.container()

explain(
    _("Each training example is an **image with its caption** (\"a small red seven in the top left\"); there are "
      "no labels. An image encoder and a text encoder map both into one $d$-dimensional space, each followed by a "
      "linear projection ($W_i$, $W_t$) and L2 normalization. In a batch of $N$ pairs every image should be "
      "closest to its own caption among the $N$ captions, and every caption to its own image: the symmetric "
      "cross-entropy over the $N\\times N$ similarity matrix, with a learned temperature $\\tau$ "
      "(the logit scale $s = e^{t} = 1/\\tau$ starts at $1/0.07$ and is clipped at 100, as in the paper):"),
    r"\text{logits}_{ij} = s\,\langle I_i, T_j\rangle,\qquad "
    r"\mathcal{L} = \frac12\Big[-\frac1N\sum_i \log\frac{e^{\text{logits}_{ii}}}{\sum_j e^{\text{logits}_{ij}}}"
    r"\;-\;\frac1N\sum_j \log\frac{e^{\text{logits}_{jj}}}{\sum_i e^{\text{logits}_{ij}}}\Big]",
    r"\text{zero-shot: }\hat y(I) = \arg\max_k \big\langle I,\; T(\text{``a photo of the number } k\text{''})\big\rangle",
    r"\text{ensemble: } \bar T_k = \frac{\sum_m T(\text{template}_m(k))}{\lVert\sum_m T(\text{template}_m(k))\rVert}",
    claim=_("Without ever seeing a label, the model reads digits from prompts in a template that no training "
            "caption used: on the held-out test images zero-shot accuracy reaches 92-95% after 800 steps (chance "
            "10%; 43-53 s of training with its snapshots on 2 shared CPU cores), and held-out captions find their "
            "image in the top 5 99% of the time. A linear probe on the frozen image features (the conv net's last "
            "feature map) reaches 95-97% on 4 of 5 seeds (94.7% on the fifth), against 61-73% for the same encoder "
            "untrained. Averaging five templates does as well as the best single template picked in hindsight, "
            "within a point: the paper gains a few points, but here the templates err alike. Test images whose "
            "(digit, colour) pair never occurred in training are read worse (56-71%). A fixed temperature of 1 "
            "keeps the logits in [-1, 1]: the 10-way digit choice still works (92-95%, and the unseen pairs too), "
            "but a caption finds its image among 720 in the top 5 only 36-50% of the time. Measured on seeds "
            "220-224, which no one tuned on. What made the difference: captions that, like real ones, say only "
            "some attributes; when every caption named colour, size and position, those alone told most pairs of "
            "a batch apart and the digit came late."),
)
with st.expander(_("What this toy keeps from the paper, and what it drops"), expanded=False):
    st.markdown(
        _("**Kept:** two encoders (a conv net for images, a Transformer over word tokens for text), linear "
          "projections to a shared space, L2 normalization, the symmetric cross-entropy over the batch's "
          "similarity matrix (the paper's pseudocode, Figure 3), the learned temperature initialized at 0.07 "
          "and clipped at a logit scale of 100, zero-shot classification with prompts, prompt ensembling in "
          "embedding space, and a linear probe on the frozen image features.\n\n**Dropped:** 400 million web "
          "image-text pairs become 4,311 generated images of coloured digits, each with 8 partial captions "
          "from a {n_words}-word vocabulary; ResNet-50 / ViT-L image encoders and a 63M-parameter 12-layer text "
          "Transformer become a 3-layer conv net and a 1-layer Transformer (about 160k parameters in all); a "
          "batch of 32,768 becomes 128; 32 epochs on hundreds of GPUs become a minute on a laptop CPU; the "
          "byte-pair tokenizer becomes a word list and the EOS token a mean over the words. The image encoder "
          "also sees the brightness max(R, G, B) so that shapes transfer across colours. The linear probe is a "
          "closed-form ridge regression on the conv net's last feature map (before the MLP head and the "
          "projection $W_i$), fitted on the training images with their digit labels; the paper fits a logistic "
          "regression.\n\n**Held out:** the zero-shot templates, the bare label word and the retrieval captions' "
          "templates never occur as a training caption, whichever attributes a caption drops (their words do, "
          "in other sentences); 5 (digit, colour) pairs never occur in training images (e.g. a green seven); "
          "test images come from the digits' test split.").format(n_words=len(VOCAB) - 2))


def text_tower(runner):
    """A frozen CPU copy of the run's text encoder at its latest snapshot (never the live model)."""
    snap, cfg = runner.latest, runner.config
    ss = st.session_state
    cached = ss.get(f"{KEY}._tower")
    if cached is not None and cached[0] is runner.token and cached[1] == snap.step:
        return cached[2]
    tower = load_text_tower(snap.arrays["text_state"], cfg.embed_dim, TEXT_DIM, cfg.layers, len(VOCAB), MAX_LEN)
    ss[f"{KEY}._tower"] = (runner.token, snap.step, tower)
    return tower


def draw(runner) -> None:
    snap, cfg = runner.latest, runner.config
    if snap is None:
        return
    m = snap.metrics
    data = load_caption_data(cfg.seed)
    st.markdown(
        _("**step {step}** · zero-shot “a photo of the number …” **{zs_acc:.0%}** · ensemble {zs_ensemble:.0%} "
          "· bare word {zs_bare:.0%} · linear probe **{probe_acc:.0%}** (random encoder "
          "{probe_acc_random_encoder:.0%}) · caption→image R@5 {r_at_5:.0%} · τ = {temperature:.3f}").format(
            step=snap.step,
            zs_acc=m['zs_acc'],
            zs_ensemble=m['zs_ensemble'],
            zs_bare=m['zs_bare'],
            probe_acc=m['probe_acc'],
            probe_acc_random_encoder=m['probe_acc_random_encoder'],
            r_at_5=m['r_at_5'],
            temperature=m['temperature'])
        + (" · " + _("loss {loss:.2f}").format(loss=m['loss']) if "loss" in m else ""))
    left, right = st.columns([4, 3])
    with left:
        # Every live figure is built once per snapshot for all the sessions watching the run (shared_view).
        live_chart(runner, "curves", lambda r: clip_curves(r.history, height=255 if lecture_mode() else 340),
                   f"{KEY}.curves")
    with right:
        def sim(r):  # from the snapshot it is given (the live feed gives newer ones)
            idx = r.latest.arrays["display"]
            labels = [str(data.attributes(int(i))[0]) for i in idx]  # one test image per digit; rows say the rest
            return similarity_figure(r.latest.arrays["sim"], labels, [data.test_captions[i] for i in idx],
                                     r.latest.metrics["logit_scale"], height=300 if lecture_mode() else 360)

        live_chart(runner, "sim", sim, f"{KEY}.sim")


def draw_slow(runner) -> None:
    snap, cfg = runner.latest, runner.config
    if snap is None:
        return
    m = snap.metrics
    data = load_caption_data(cfg.seed)
    left, right = st.columns(2)
    with left:
        n = len(snap.arrays["pca_img"])
        show(shared_view(runner, "pca", lambda: joint_pca_figure(snap.arrays["pca_img"], data.digit_test[:n].numpy(),
                                                                 snap.arrays["pca_txt"], WORDS)), key=f"{KEY}.pca")
        st.caption(_("Images and texts sit in two separate regions (the 'modality gap' of contrastive models); "
                     "what lines up is the direction inside each: each prompt's star points towards its digit's "
                     "dots."))
    with right:
        show(shared_view(runner, "templates", lambda: template_bars(m, PROMPT_TEMPLATES)), key=f"{KEY}.templates")
        st.caption(_("On test images whose (digit, colour) pair never occurred in training: {acc:.0%} with the "
                     "first template.").format(acc=m['zs_acc_unseen_combo']))
    tower = text_tower(runner)
    gallery = snap.arrays["gallery"]
    scale = float(m["logit_scale"])
    st.subheader(_("Search the test images with a caption"))
    if current_language() != "en":  # said once, where the reader types: captions are the model's English data
        st.caption(_("The toy model reads English: its vocabulary, the training captions, the prompts and the "
                     "captions below stay in English. Type your caption in English too."))
    # The default caption is English input (the model's language), in every UI language.
    text = st.text_input(_("Caption"), key=f"{KEY}.query", value="a large red seven in the top left", max_chars=200,
                         help=_("Read by the run's text encoder at its latest snapshot; every test image is ranked "
                                "by its cosine with the caption."))
    tokens = tokenize(text)
    words = [w for w in VOCAB[2:]]
    if tokens.unknown:
        shown = ", ".join(f"'{w}'" for w in tokens.unknown[:5])
        note = (_("{words} is not in the vocabulary (read as <unk>); known words: {known}")
                if len(tokens.unknown) == 1 else
                _("{words} are not in the vocabulary (read as <unk>); known words: {known}"))
        st.info(plain(note.format(words=shown, known=", ".join(words))), icon="🔤")
    if tokens.truncated:
        st.info(_("Only the first {n} words are read.").format(n=MAX_LEN), icon="✂️")
    if not text.strip():
        st.caption(_("Type a caption to rank the test images."))
    else:
        q = tower(tokens.ids[None])[0].numpy()
        scores = gallery @ q
        top = np.argsort(-scores)[:8]
        st.image(rgb_tiles(data.x_test[top].numpy(), scale=4, gap=4),
                 caption=_("best 8, left to right: {scores}").format(
                     scores=" · ".join(f"{scores[i]:.2f}" for i in top)))
    st.subheader(_("Pick an image: which caption fits?"))
    i = st.slider(_("Test image"), 0, len(gallery) - 1, key=f"{KEY}.pick", value=0)
    d, colour, size, pos = data.attributes(i)
    other_colour = COLOUR_NAMES[(COLOUR_NAMES.index(colour) + 1) % len(COLOUR_NAMES)]
    other_pos = POSITIONS[(POSITIONS.index(pos) + 2) % len(POSITIONS)]
    other_size = SIZE_NAMES[1 - SIZE_NAMES.index(size)]
    template = "a {size} {colour} {word} in the {position}"
    own = caption(template, d, colour, size, pos)
    labels = prompts(PROMPT_TEMPLATES[0]) + [own, caption(template, d, other_colour, size, pos),
                                             caption(template, d, colour, other_size, pos),
                                             caption(template, d, colour, size, other_pos)]
    emb = tower(tokenize_all(labels)).numpy()
    logits = scale * emb @ gallery[i]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    c1, c2 = st.columns([1, 3])
    c1.image(rgb_tiles(data.x_test[i:i + 1].numpy(), scale=8),
             caption=_("test image {i}: {caption}").format(i=i, caption=own))
    with c2:
        show(ranking_figure(labels, probs, highlight=len(WORDS),
                            title=_("softmax over {n} captions (scale {scale:.0f} × cosine)").format(
                                n=len(labels), scale=scale)), key=f"{KEY}.rank")


def main_view(runner):
    """The replay's view: the batch similarity matrix, its diagonal lighting up as the two encoders align."""
    snap, data = runner.latest, load_caption_data(runner.config.seed)
    idx = snap.arrays["display"]
    return similarity_figure(snap.arrays["sim"], [str(data.attributes(int(i))[0]) for i in idx],
                             [data.test_captions[i] for i in idx], snap.metrics["logit_scale"])


live_run(KEY, demo, config, current_device(), draw, draw_slow=draw_slow, stage=stage, views=views, main_view=main_view)
