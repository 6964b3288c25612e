"""DINO topic: ViT layout and attention, mass masks and IoU, entropies, the DINO loss, checkpoints, the demo."""

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlviz.analysis.attention_masks import head_ious, iou, mass_mask, output_entropies, patch_masks
from dlviz.data.clutter import make_clutter, sample_photos
from dlviz.demos.dino import PRESETS, Config, dino_loss, photo_attention, random_crops, run
from dlviz.demos.base import snapshots
from dlviz.models.vit import CheckpointError, DINOHead, VisionTransformer, load_dino_checkpoint

TINY = Config(embed_dim=96, depth=4, num_heads=3, out_dim=64, local_crops=1, batch_size=16, steps=40,
              eval_every=20)


def test_vit_names_follow_official_dino_layout():
    keys = set(VisionTransformer(32, 4, 1, 96, 4, 3).state_dict())
    for k in ("cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight",
              "blocks.3.norm1.weight", "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias",
              "blocks.0.attn.proj.weight", "blocks.0.norm2.bias", "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.bias"):
        assert k in keys, k
    head = set(DINOHead(96, 128).state_dict())
    assert {"mlp.0.weight", "mlp.2.weight", "mlp.4.weight", "last_layer.weight_g", "last_layer.weight_v"} <= head


def test_attention_rows_are_distributions_and_last_layer_matches():
    torch.manual_seed(0)
    vit = VisionTransformer(32, 4, 1, 96, 4, 3).eval()
    x = torch.randn(2, 1, 32, 32)
    last = vit.get_last_selfattention(x)
    layers = vit.get_selfattention(x)
    assert last.shape == (2, 3, 65, 65) and len(layers) == 4
    torch.testing.assert_close(last.sum(-1), torch.ones(2, 3, 65))
    torch.testing.assert_close(layers[-1], last)
    # Smaller inputs (local crops) get interpolated position embeddings.
    assert vit(torch.randn(2, 1, 16, 16)).shape == (2, 96)


def test_registers_sit_between_cls_and_patches_and_stay_out_of_the_maps():
    from dlviz.analysis.attention_masks import cls_attention

    torch.manual_seed(0)
    vit = VisionTransformer(32, 4, 1, 96, 2, 3, registers=4).eval()
    assert vit.reg_tokens.shape == (1, 4, 96) and vit.pos_embed.shape == (1, 65, 96)  # registers have no position
    x = torch.randn(2, 1, 32, 32)
    attn = vit.get_last_selfattention(x)
    assert attn.shape == (2, 3, 69, 69)
    maps = cls_attention(attn, (8, 8))
    # The maps are the CLS row's last 64 columns: what the CLS token gives itself and the registers is not in them.
    torch.testing.assert_close(maps.flatten(2).sum(-1) + attn[:, :, 0, :5].sum(-1), torch.ones(2, 3))
    fake = torch.zeros(1, 1, 69, 69)
    fake[0, 0, 0, 1:5] = 0.5  # half of the CLS attention on the registers
    fake[0, 0, 0, 5 + 9] = 0.5  # the other half on patch (1, 1)
    assert cls_attention(fake, (8, 8))[0, 0, 1, 1] == 0.5 and cls_attention(fake, (8, 8)).sum() == 0.5
    # Without registers (official DINO checkpoints) nothing changes.
    assert VisionTransformer(32, 4, 1, 96, 2, 3).reg_tokens is None
    assert "reg_tokens" not in VisionTransformer(32, 4, 1, 96, 2, 3).state_dict()
    assert vit(torch.randn(2, 1, 16, 16)).shape == (2, 96)  # local crops: positions interpolated, registers kept


def test_mass_mask_is_the_smallest_set_holding_the_mass():
    torch.manual_seed(1)
    maps = torch.rand(5, 4, 4) ** 3
    keep = mass_mask(maps, 0.6)
    flat = maps.flatten(1) / maps.flatten(1).sum(1, keepdim=True)
    for i in range(5):
        kept = flat[i][keep[i].flatten()]
        assert kept.sum() >= 0.6 - 1e-6
        # Dropping the smallest kept cell falls below the mass: the set is minimal.
        assert kept.sum() - kept.min() < 0.6
    assert int(mass_mask(torch.ones(1, 10, 10), 0.6).sum()) == 60


def test_iou_and_patch_masks():
    a = torch.zeros(4, 4, dtype=torch.bool)
    b = torch.zeros(4, 4, dtype=torch.bool)
    a[:2, :2] = True
    b[:2, :3] = True
    assert float(iou(a, b)) == pytest.approx(4 / 6)
    m = torch.zeros(1, 8, 8, dtype=torch.bool)
    m[0, :4, :1] = True  # 4 of 16 pixels of the first 4x4 patch: exactly 25%
    assert patch_masks(m, 4)[0].tolist() == [[True, False], [False, False]]


def test_attention_mass_on_the_object_vs_iou():
    from dlviz.analysis.attention_masks import head_object_mass

    obj = torch.zeros(2, 4, 4, dtype=torch.bool)
    obj[:, :2, :2] = True  # 4 of 16 patches
    uniform = torch.ones(2, 1, 4, 4)
    part = torch.zeros(2, 1, 4, 4)
    part[:, 0, 0, 0] = 1.0  # all attention on one object patch
    maps = torch.cat([uniform, part], 1)  # two heads
    assert head_object_mass(maps, obj).tolist() == pytest.approx([0.25, 1.0])
    # The same focused head covers a quarter of the object: IoU 0.25, while its mass on the object is 1.
    assert head_ious(maps, obj).tolist()[1] == pytest.approx(0.25)


def test_entropies_at_the_collapse_levels():
    k = 16
    h_mean, h_sample = output_entropies(torch.full((8, k), 1 / k))
    assert h_mean == pytest.approx(math.log(k)) and h_sample == pytest.approx(math.log(k))
    one = F.one_hot(torch.zeros(8, dtype=torch.long), k).float()
    assert output_entropies(one) == pytest.approx((0.0, 0.0), abs=1e-6)
    spread = F.one_hot(torch.arange(8) % k, k).float()
    h_mean, h_sample = output_entropies(spread)
    assert h_mean == pytest.approx(math.log(8)) and h_sample == pytest.approx(0.0, abs=1e-6)


def test_dino_loss_matches_the_formula_and_temperature_divides_logits():
    torch.manual_seed(2)
    B, K = 4, 10
    s, t, c = torch.randn(3 * B, K), torch.randn(2 * B, K), torch.randn(1, K)
    got = dino_loss(s, t, c, 3, 0.1, 0.04)
    q = [F.softmax((t[i * B:(i + 1) * B] - c) / 0.04, -1) for i in range(2)]
    p = [F.log_softmax(s[i * B:(i + 1) * B] / 0.1, -1) for i in range(3)]
    pairs = [(0, 1), (0, 2), (1, 0), (1, 2)]
    want = sum(-(q[a] * p[b]).sum(-1).mean() for a, b in pairs) / 4
    torch.testing.assert_close(got, want)


def test_crops_and_data():
    d = make_clutter(64, 32, seed=3)
    assert d.images.shape == (64, 1, 32, 32) and d.masks.shape == (64, 32, 32)
    assert 0.03 < d.masks.float().mean() < 0.3
    # The object is brighter than the clutter on average: object and background statistics differ.
    assert d.images[:, 0][d.masks].mean() > 2 * d.images[:, 0][~d.masks].mean()
    g = torch.Generator().manual_seed(0)
    assert random_crops(d.images[:8], 16, (0.1, 0.4), g).shape == (8, 1, 16, 16)
    # A crop resamples the image: a constant image stays constant, a ramp keeps its range.
    const = torch.full((4, 1, 32, 32), 0.7)
    torch.testing.assert_close(random_crops(const, 32, (0.5, 1.0), g), const)
    ramp = torch.linspace(0, 1, 32).expand(4, 1, 32, 32)
    crop = random_crops(ramp, 32, (0.5, 1.0), g)
    assert crop.min() >= 0 and crop.max() <= 1 and (crop.amax((1, 2, 3)) - crop.amin((1, 2, 3)) > 0.4).all()


def test_weight_decay_schedule_runs_from_start_to_end():
    from dlviz.demos.dino import weight_decay_at

    c = Config(steps=100)
    assert weight_decay_at(c, 0) == pytest.approx(c.weight_decay)
    assert weight_decay_at(c, 100) == pytest.approx(c.weight_decay_end)
    assert c.weight_decay < weight_decay_at(c, 50) < c.weight_decay_end


def test_departures_text_matches_the_code():
    """What the page lists as departures from the paper is what the code does."""
    from dlviz.demos.dino import CLIP_NORM, DEPARTURES, GLOBAL_SCALE, decay_groups
    from dlviz.models.vit import MultiCropWrapper

    text = " ".join(DEPARTURES)
    assert GLOBAL_SCALE == (0.5, 1.0) and "50-100%" in text
    assert Config().out_dim == 512 and "K = 512" in text and Config().local_crops == 0
    assert CLIP_NORM == 3.0 and "global norm of 3" in text
    assert Config().registers == 0  # DINO's ViT: registers did not raise the share of seeds that pass
    head = DINOHead(96, 512, use_bn=True)
    assert head.last_layer.weight_g.requires_grad and "norm_last_layer=False" in text  # trainable norm
    student = MultiCropWrapper(VisionTransformer(32, 4, 1, 96, 1, 3), head)
    decay, no_decay = decay_groups(student)
    ids = {id(p) for p in decay}
    assert all(id(p) not in ids for n, p in student.named_parameters() if "last_layer" in n)
    qkv = student.backbone.blocks[0].attn.qkv
    assert id(qkv.weight) in ids and id(qkv.bias) not in ids
    assert len(decay) + len(no_decay) == len(list(student.parameters()))


def _official_vit_s16_state(seed=0) -> dict:
    torch.manual_seed(seed)
    return VisionTransformer(224, 16, 3, 384, 12, 6).state_dict()


def test_official_checkpoint_format_loads_full_size(tmp_path):
    state = _official_vit_s16_state()
    path = tmp_path / "dino_deitsmall16_pretrain.pth"
    torch.save(state, path)
    vit = load_dino_checkpoint(path)
    assert (vit.embed_dim, len(vit.blocks), vit.num_heads, vit.patch_size) == (384, 12, 6, 16)
    torch.testing.assert_close(vit.state_dict()["blocks.11.attn.qkv.weight"], state["blocks.11.attn.qkv.weight"])
    # A training checkpoint with prefixes and a head loads too.
    ckpt = {"teacher": {**{f"backbone.{k}": v for k, v in state.items()}, "head.mlp.0.weight": torch.zeros(2, 2)}}
    torch.save(ckpt, tmp_path / "checkpoint.pth")
    assert load_dino_checkpoint(tmp_path / "checkpoint.pth").embed_dim == 384
    name, photo = sample_photos()[0]
    image, maps, kept = photo_attention(vit, photo, side=112)
    assert maps.shape[0] == 6 and kept.shape == maps.shape and image.shape[:2] == (112, 160)


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="No file"):
        load_dino_checkpoint(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="Could not read"):
        load_dino_checkpoint(tmp_path / "junk.pth")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a ViT"):
        load_dino_checkpoint(tmp_path / "other.pth")


def _run(config, n):
    """The first ``n`` full (evaluated) snapshots."""
    full = (s for s in snapshots(run(config, torch.device("cpu"))) if s.metrics["eval_step"] == s.step)
    return list(itertools.islice(full, n))


def test_demo_snapshots_and_shapes():
    every = list(snapshots(run(replace(TINY, steps=20, eval_every=10), torch.device("cpu"))))
    # A snapshot after every step (the page moves live); the maps and IoUs are measured every 10 steps.
    assert [s.step for s in every] == list(range(21))
    assert [s.metrics["eval_step"] for s in every] == [0] * 10 + [10] * 10 + [20]
    assert every[5].arrays is every[0].arrays and every[5].metrics["loss"] != every[6].metrics["loss"]
    snaps = [s for s in every if s.metrics["eval_step"] == s.step]
    first, last = snaps[0], snaps[-1]
    assert last.step == 20 and "loss" in last.metrics and math.isfinite(last.metrics["loss"])
    assert first.arrays["teacher_maps"].shape == (6, 4, 3, 8, 8)
    assert last.arrays["features"].shape == (256, 96)
    assert last.metrics["log_k"] == pytest.approx(math.log(64))
    assert 0 <= last.metrics["attn_iou_best"] <= 1 and last.metrics["attn_iou_mean"] <= last.metrics["attn_iou_best"]
    # The teacher moved, by EMA only.
    assert not np.allclose(first.arrays["teacher_maps"], last.arrays["teacher_maps"])


def test_no_centering_collapses_to_one_dimension_and_no_sharpening_to_uniform():
    base = replace(TINY, steps=25, eval_every=25, lr=2e-3)
    nc = _run(replace(base, centering=False), 2)[-1].metrics
    dino = _run(base, 2)[-1].metrics
    ns = _run(replace(base, teacher_temp=PRESETS["no-sharpening"].config.teacher_temp,
                      warmup_teacher_temp=PRESETS["no-sharpening"].config.warmup_teacher_temp), 2)[-1].metrics
    assert nc["teacher_entropy"] < dino["teacher_entropy"]
    assert ns["teacher_sample_entropy"] > dino["teacher_sample_entropy"]


def test_supervised_baseline_reports_attention_and_accuracy():
    from dlviz.demos.dino import train_supervised

    out = train_supervised(replace(TINY, batch_size=8), torch.device("cpu"), steps=3)
    assert 0 <= out["test_acc"] <= 1 and 0 <= out["iou_best"] <= 1 and out["iou_mean"] <= out["iou_best"]
    assert len(out["head_iou"]) == TINY.num_heads and out["maps"].shape[:3] == (6, TINY.depth, TINY.num_heads)
    assert 0 <= out["mass_best"] <= 1
