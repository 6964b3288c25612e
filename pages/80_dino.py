"""DINO self-attention
icon: 🦖
A small ViT trained with DINO, without labels, learns where the object is: its attention heads outline it.
"""

import numpy as np
import streamlit as st
import torch

from dlviz.analysis.attention_masks import iou, mass_mask, patch_masks
from dlviz.data.clutter import sample_photos
from dlviz.data.uploads import MAX_PIXELS, MAX_SIDE, MAX_UPLOAD_MB, ImageRejected, read_user_image
from dlviz.demos import get_demo
from dlviz.demos.dino import DEPARTURES, N_SHOW, SUPERVISED_STEPS, photo_attention, train_supervised
from dlviz.figures.dino import attention_figure, entropy_figure, iou_bars, iou_curves
from dlviz.models.vit import CheckpointError, list_checkpoints, load_dino_checkpoint, weights_dir
from dlviz.ui import config_form, current_device, explain, lecture_mode, live_chart, live_run, plain, shared_view, show
from dlviz.ui.controls import linked_view
from dlviz.ui.compute import queued
from dlviz.ui.feature_sources import FeatureSource, publish
from dlviz.ui.show import freeze
from dlviz.ui.topics import require_app
from dlviz.i18n import N_, _, tr

require_app(__file__)

KEY = "dino"
demo = get_demo("dino")
st.title(_("DINO: a ViT learns where the object is, without labels"))
stage = st.container()  # figure first: buttons and the live view above the controls
explain(
    _("**DINO** (Caron et al., 2021) trains a *student* ViT to predict the output of a *teacher* ViT on another "
    "crop of the same image. The teacher is not trained by gradients: it is an exponential moving average of "
    "the student. Both end in a softmax over $K$ dimensions; the loss is the cross-entropy between them, "
    "summed over pairs of different views (the teacher sees the 2 global crops; the student also sees small "
    "local crops when *local crops* is above 0, off by default here):"),
    r"\mathcal{L} = \sum_{t \in \{g_1, g_2\}} \sum_{s \neq t} -\,P_t(x)^\top \log P_s(x), \qquad "
    r"P_s = \mathrm{softmax}\!\left(\frac{g_s(x)}{\tau_s}\right),\quad "
    r"P_t = \mathrm{softmax}\!\left(\frac{g_t(x) - c}{\tau_t}\right)",
    r"c \leftarrow m\, c + (1 - m)\,\frac{1}{B}\sum_i g_t(x_i) \quad (m = 0.9)",
    r"\theta_t \leftarrow \lambda\,\theta_t + (1 - \lambda)\,\theta_s \quad (\lambda: \lambda_0 \to 1,\ \text{cosine};"
    r"\ \lambda_0 = 0.996 \text{ in the paper, } 0.95 \text{ here for a short run})",
    claim=_("The temperature divides the logits: a low teacher temperature (0.04 < 0.1 of the student) is the "
          "*sharpening*, which pushes each image to one dimension; *centering* subtracts the running mean, "
          "which stops one dimension from winning for every image. Each alone collapses (watch the entropies): "
          "together, the student can only match the teacher by finding what is shared between crops: the object. "
          "Measured on 256 held-out images: the IoU of each head's 60%-mass mask with the object (DINO's "
          "figure), against a random ViT and a map of plain brightness. The best head is picked on 256 other "
          "held-out images: picked on the images it is scored on, it would be flattered by their noise."),
)
config = config_form(demo, KEY)
with st.expander(_("Departures from the paper (what this code does)")):
    st.markdown("\n".join(f"- {_(line)}" for line in DEPARTURES))


def _kept(maps: np.ndarray, keep: float) -> np.ndarray:
    return mass_mask(torch.from_numpy(maps), keep).numpy()


def draw(runner) -> None:
    """The live area: numbers and curves that move with every step."""
    snap = runner.latest
    if snap is None:
        return
    m = snap.metrics
    c = st.columns(6)
    # Short labels and deltas: six columns at 1280 px in lecture mode; the long form is in each help.
    c[0].metric(_("best head IoU"), f"{m['attn_iou_best']:.2f}",
                f"{m['attn_iou_best'] - m['attn_iou_random_init']:+.2f}",
                help=_("The change against the untrained ViT is under the value. The teacher's last layer. Head {value:.0f}, the best on 256 other held-out images; the highest IoU "
                       "of any head on these images is {get:.2f}.").format(
                         value=m.get('best_head', 0) + 1,
                         get=m.get('attn_iou_max', m['attn_iou_best'])))
    c[1].metric(_("mean IoU"), f"{m['attn_iou_mean']:.2f}", help=_("The mean over the last layer's heads."))
    c[2].metric(_("random ViT"), f"{m['attn_iou_random_init']:.2f}", help=_("The best head of the same ViT, untrained."))
    c[3].metric(_("brightness"), f"{m['brightness_iou']:.2f}",
                help=_("The brightness baseline. The mask kept from a map that is just each patch's brightness: what intensity alone explains."))
    c[4].metric(_("on object"), f"{m['attn_mass_best']:.0%}",
                _("object {share:.0%}").format(share=m['object_share']), delta_color="off",
                help=_("Attention on the object; the object is {object_share:.0%} of the patches. The best head's share of "
                       "CLS attention that lands on object patches. The IoU also asks the 60% mask to cover the whole "
                       "object; a head focused on part of it scores high here, not there.").format(object_share=m['object_share']))
    c[5].metric(_("entropy"), f"{m['teacher_entropy']:.2f}", f"log K {m['log_k']:.2f}", delta_color="off",
                help=_("The entropy of the teacher's mean output (nats); log K is uniform over the K dimensions."))
    # Figures: built once per snapshot for every session watching the run (shared_view); a session's own choices
    # (a supervised baseline it computed, the network, layer and mass it shows) are part of the key.
    live_chart(runner, "ioucurves", lambda r: iou_curves(r.history, height=215 if lecture_mode() else 320),
               f"{KEY}.ioucurves")
    st.caption(_("Attention maps and IoUs are measured every {eval_every} steps (last: step {eval_step:.0f}); the "
                 "loss and entropies move with every step.").format(
                   eval_every=runner.config.eval_every,
                   eval_step=m['eval_step']))
    sup = st.session_state.get(f"{KEY}.supervised")
    # The supervised baseline this session computed for this run (None: none): a choice of the session, in the key.
    sup_iou = sup[1]["iou_best"] if sup is not None and sup[0] == runner.config else None

    def bars(r):  # from the snapshot it is given (the live feed gives newer ones)
        m = r.latest.metrics
        values = {_("DINO best head"): m["attn_iou_best"], _("DINO mean"): m["attn_iou_mean"],
                  _("random init"): m["attn_iou_random_init"], _("brightness"): m["brightness_iou"]}
        if sup_iou is not None:
            values[_("labels (best head)")] = sup_iou
        return iou_bars(values, r.latest.arrays["head_iou"])

    left, right = st.columns(2)
    with left:
        live_chart(runner, "entropy", lambda r: entropy_figure(r.history, r.latest.metrics["log_k"]),
                   f"{KEY}.entropy")
    with right:
        live_chart(runner, "bars", bars, f"{KEY}.bars", sup_iou)


def draw_maps(runner) -> None:
    """The attention maps: they change only when the run is evaluated, so they redraw on the slower timer."""
    snap, first = runner.latest, runner.first
    if snap is None:
        return
    arr = snap.arrays
    depth = arr["teacher_maps"].shape[1]
    v = st.columns([1, 2, 2])
    linked_view(f"{KEY}.who", "net", choices=("teacher", "student"))
    linked_view(f"{KEY}.layer", "layer", int, lo=1, hi=depth, default=depth)
    linked_view(f"{KEY}.keep", "keep", lambda s: round(float(s) * 20) / 20, lo=0.1, hi=0.9, default=0.6)
    linked_view(f"{KEY}.before", "before", bool)
    who = v[0].radio(_("Network"), [N_("teacher"), N_("student")], horizontal=True, key=f"{KEY}.who", format_func=_)
    layer = v[1].slider(_("Layer"), 1, depth, key=f"{KEY}.layer",
                        help=_("DINO's figure shows the last layer; earlier layers attend more locally."))
    keep = v[2].slider(_("Attention mass kept"), 0.1, 0.9, step=0.05, key=f"{KEY}.keep",
                       help=_("Each mask keeps the fewest patches holding this fraction of the head's attention."))
    at = int(snap.metrics["eval_step"])

    def build():
        maps = arr[f"{who}_maps"][:, layer - 1]
        kept = _kept(maps, keep)
        obj = patch_masks(torch.from_numpy(arr["masks"]), 4).numpy()
        per_head = iou(torch.from_numpy(kept), torch.from_numpy(obj)[:, None]).mean(0).numpy()
        return per_head, freeze(attention_figure(  # themed before another session can see it
            arr["images"][:4], maps[:4], kept[:4], arr["masks"][:4],
            title=_("{capitalize}, layer {layer}: CLS attention per head and the mask keeping {keep:.0%} of it (step "
                    "{at})").format(capitalize=who.capitalize(), layer=layer, keep=keep, at=at)), lecture_mode())

    per_head, fig = shared_view(runner, "attention", build, who, layer, keep)
    show(fig, key=f"{KEY}.att")
    st.caption(_("On these {N_SHOW} images, IoU per head at {keep:.0%}: ").format(N_SHOW=N_SHOW, keep=keep)
               + ", ".join(_("head {i}: {iou:.2f}").format(i=i + 1, iou=x) for i, x in enumerate(per_head))
               + _(". The held-out IoU metrics above use 256 images, the teacher's last layer and 60%."))
    if st.toggle(_("Compare with the same images before training"), key=f"{KEY}.before"):
        m0 = first.arrays[f"{who}_maps"][:4, layer - 1]
        show(attention_figure(first.arrays["images"][:4], m0, _kept(m0, keep), first.arrays["masks"][:4],
                              title=_("{capitalize}, layer {layer}, step 0 (random initialization)").format(capitalize=who.capitalize(), layer=layer)),
             key=f"{KEY}.att0")
    publish(FeatureSource(name=f"DINO ViT ({runner.config.embed_dim}-d teacher CLS token)", page=KEY,
                          step=at, config={"out_dim": runner.config.out_dim}, features=arr["features"],
                          labels=arr["labels"], images=arr["eval_images"],
                          class_names=tuple(str(i) for i in range(10))))


def main_view(runner):
    """The replay's view: the teacher's last-layer attention per head on four images, 60% of the mass kept."""
    arr = runner.latest.arrays
    maps = arr["teacher_maps"][:4, -1]
    return attention_figure(arr["images"][:4], maps, _kept(maps, 0.6), arr["masks"][:4],
                            title=_("Teacher, last layer: CLS attention per head (step {at})").format(
                                at=int(runner.latest.metrics["eval_step"])))


runner = live_run(KEY, demo, config, current_device(), draw, draw_slow=draw_maps, stage=stage, views=st.container(),
                  main_view=main_view)

st.subheader(_("Baseline: the same ViT trained with labels"))
st.caption(_("Cross-entropy on the digit class, same images, {SUPERVISED_STEPS:,} steps (about 90 s on 2 CPU "
             "cores; a ViT from scratch needs ~500 steps before it leaves chance). Does supervision find the "
             "object as well as DINO does?").format(SUPERVISED_STEPS=SUPERVISED_STEPS))
# The baseline of the run on screen (its settings and held-out images), even if the controls changed since.
if st.button(_("Train the labelled ViT"), key=f"{KEY}.sup_go"):
    st.session_state[f"{KEY}.supervised"] = (runner.config, queued(_("Training a ViT with labels"), train_supervised,
                                                                   runner.config, runner.device))
sup = st.session_state.get(f"{KEY}.supervised")
if sup is not None and sup[0] == runner.config:
    res = sup[1]
    st.write(_("Labelled ViT: best head IoU **{iou_best:.2f}**, mean over heads {iou_mean:.2f}, test accuracy "
               "{test_acc:.0%}.").format(
                 iou_best=res['iou_best'],
                 iou_mean=res['iou_mean'],
                 test_acc=res['test_acc']))
    maps = res["maps"][:, -1]
    if runner.latest is not None:
        a = runner.latest.arrays
        show(attention_figure(a["images"][:4], maps[:4], _kept(maps[:4], 0.6), a["masks"][:4],
                              title=_("Labelled ViT, last layer, 60% mass")), key=f"{KEY}.supatt")

st.subheader(_("Pretrained DINO on photos"))
st.caption(_("Official DINO ViT-S/16, ViT-S/8 or ViT-B/16 backbones (e.g. `dino_deitsmall16_pretrain.pth` from the "
           "DINO repository), read only from the weights folder, with `torch.load(..., weights_only=True)` into the "
           "same class."))
folder = weights_dir()
files = {p.name: p for p in list_checkpoints(folder)}


@st.cache_resource(show_spinner=_("Loading the checkpoint..."), max_entries=2)
def _load(p: str, mtime: float, size: int):
    return load_dino_checkpoint(p)  # read-only afterwards: only forward passes in eval mode


vit = None
if not files:
    st.info(_("No checkpoint yet: put official DINO `.pth` files in this folder (or set `DLVIZ_WEIGHTS` to another "
            "one) and reload the page to see their attention on two sample photos and on an image you upload."))
    st.code(str(folder.resolve()), language=None)
else:
    name = st.selectbox(_("Checkpoint"), list(files), index=None, placeholder=_("Choose a checkpoint"), key=f"{KEY}.ckpt",
                        help=_("The *.pth and *.pt files in the weights folder ($DLVIZ_WEIGHTS, default data/weights)."))
    chosen = files.get(name) if name else None
    if chosen is not None:
        try:
            stat = chosen.stat()
            vit = _load(str(chosen), stat.st_mtime, stat.st_size)
        except CheckpointError as exc:
            st.error(plain(_("{exc} Choose another file.").format(exc=tr(exc.args[0]))), icon="📂")
        except Exception as exc:  # the file vanished, out of memory, ...
            st.error(plain(_("Could not load {name} ({name2}). Choose another file.").format(name=chosen.name, name2=type(exc).__name__)), icon="📂")
if vit is not None:
    st.caption(_("Loaded a ViT with width {embed_dim}, {len} blocks, {num_heads} heads, patch {patch_size}.").format(
                   embed_dim=vit.embed_dim,
                   len=len(vit.blocks),
                   num_heads=vit.num_heads,
                   patch_size=vit.patch_size))
    photos = [(name, img) for name, img in sample_photos()]
    up = st.file_uploader(_("Your image (PNG or JPEG)"), type=["png", "jpg", "jpeg"], key=f"{KEY}.upload",
                          help=_("At most {MAX_UPLOAD_MB} MB and {value:.0f} megapixels. Larger images are shrunk to {MAX_SIDE} px on "
                                 "the longer side; images longer than 2:1 are center-cropped.").format(
                                   MAX_UPLOAD_MB=MAX_UPLOAD_MB,
                                   value=MAX_PIXELS / 1e6,
                                   MAX_SIDE=MAX_SIDE))
    if up is not None:
        try:
            photos.append(("upload", read_user_image(up.getvalue())))
        except ImageRejected as exc:
            st.error(plain(tr(exc.args[0])), icon="🖼️")
    side = st.select_slider(_("Short side (px)"), [112, 224, 320], 224, key=f"{KEY}.side", format_func=_)
    for name, img in photos:
        try:
            image, maps, kept = photo_attention(vit, img, side)
        except Exception as exc:  # a checkpoint whose shapes load but do not run, out of memory, ...
            st.error(plain(_("Could not compute the attention on {name} ({name2}): try a smaller short side or another checkpoint.").format(name=name, name2=type(exc).__name__)), icon="🖼️")
            continue
        heads = min(6, len(maps))
        show(attention_figure(image[None], maps[None, :heads], kept[None, :heads], tile_px=160,
                              title=_("{name}: last-layer CLS attention per head and 60% masks").format(name=name)),
             key=f"{KEY}.photo.{name}")
