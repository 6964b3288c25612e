"""CLIP: the symmetric loss against a hand computation, the tokenizer, the held-out split, a short training run."""

import itertools
import math
import re
from dataclasses import replace

import torch
import torch.nn.functional as F

from dlviz.data.captions import (BARE_TEMPLATE, COLOUR_NAMES, HELD_OUT_COMBOS, NO_DIGIT_TEMPLATES, POSITIONS,
                                 PROMPT_TEMPLATES, RETRIEVAL_TEMPLATES, TRAIN_TEMPLATES, VOCAB, WORDS, decode,
                                 load_caption_data, prompts, template_variants, tokenize)
from dlviz.demos.base import snapshots
from dlviz.demos.clip import PRESETS, learning_rate, loss_floor, ridge_probe, run
from dlviz.models.clip import MAX_LOGIT_SCALE, TinyCLIP, clip_loss


def test_symmetric_loss_by_hand_on_a_2x2_matrix():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = F.normalize(torch.tensor([[1.0, 1.0], [0.0, 1.0]]), dim=1)
    s = 2.0
    c = 1 / math.sqrt(2)  # cos(img0, txt0) = cos(img1, txt0) = 1/sqrt2; cos(img0, txt1) = 0; cos(img1, txt1) = 1
    logits = [[s * c, 0.0], [s * c, s * 1.0]]  # rows: images, columns: texts
    row = -(math.log(math.exp(logits[0][0]) / (math.exp(logits[0][0]) + math.exp(logits[0][1])))
            + math.log(math.exp(logits[1][1]) / (math.exp(logits[1][0]) + math.exp(logits[1][1])))) / 2
    col = -(math.log(math.exp(logits[0][0]) / (math.exp(logits[0][0]) + math.exp(logits[1][0])))
            + math.log(math.exp(logits[1][1]) / (math.exp(logits[0][1]) + math.exp(logits[1][1])))) / 2
    assert abs(float(clip_loss(img, txt, s)) - (row + col) / 2) < 1e-6
    assert abs(row - col) > 0.05  # the two directions differ here: a one-sided loss would fail the check


def test_symmetric_loss_matches_a_plain_loop():
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    txt = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    s = 7.0
    total = 0.0
    for i in range(6):
        li = [s * float(img[i] @ txt[j]) for j in range(6)]
        lt = [s * float(img[j] @ txt[i]) for j in range(6)]
        total += -(li[i] - math.log(sum(map(math.exp, li)))) - (lt[i] - math.log(sum(map(math.exp, lt))))
    assert abs(float(clip_loss(img, txt, s)) - total / 12) < 1e-5
    assert float(clip_loss(img, img, 50.0)) < 0.01  # perfect pairs, high scale: near zero
    # the floor: the positive at +s and every negative at -s
    assert abs(loss_floor(128, 1.0) - math.log(1 + 127 * math.exp(-2))) < 1e-9


def test_logit_scale_starts_at_paper_value_and_is_clipped():
    m = TinyCLIP(len(VOCAB), 12)
    assert abs(float(m.logit_scale.detach()) - 1 / 0.07) < 1e-4
    with torch.no_grad():
        m.log_scale.fill_(10.0)
    m.clamp_scale()
    assert abs(float(m.logit_scale.detach()) - MAX_LOGIT_SCALE) < 1e-3
    fixed = TinyCLIP(len(VOCAB), 12, temperature=1.0, learn_temperature=False)
    assert not fixed.log_scale.requires_grad and abs(float(fixed.logit_scale) - 1.0) < 1e-6


def test_tokenizer_unknown_words_empty_text_and_long_text():
    t = tokenize("A ZEBRA in the top-left!")
    assert t.unknown == ("zebra",)
    assert decode(t.ids) == "a <unk> in the top left"
    empty = tokenize("")
    assert empty.unknown == () and int(empty.ids.abs().sum()) == 0
    long = tokenize("seven " * 20)
    assert long.truncated == 8 and int((long.ids != 0).sum()) == 12
    m = TinyCLIP(len(VOCAB), 12)
    out = m.encode_text(torch.stack([empty.ids, t.ids]))
    assert torch.isfinite(out).all()  # an empty caption embeds to a finite vector, never NaN


def test_held_out_templates_and_combos_never_in_training():
    data = load_caption_data(0)
    train_rows = {tuple(r) for r in data.train_tokens.flatten(0, 1).tolist()}
    train_words = set(data.train_tokens.unique().tolist())
    held_out = [p for t in PROMPT_TEMPLATES for p in prompts(t)] + list(data.test_captions)
    held_rows = {tuple(tokenize(t).ids.tolist()) for t in held_out}
    assert len(held_rows) > 100 and not train_rows & held_rows
    skeleton = lambda t: re.sub(r"\{\w+\}", "_", t)  # noqa: E731
    train_skeletons = {skeleton(v) for t in TRAIN_TEMPLATES + NO_DIGIT_TEMPLATES for v in template_variants(t)}
    assert len(train_skeletons) > 40  # every partial form of every template
    held_skeletons = {skeleton(t) for t in PROMPT_TEMPLATES + RETRIEVAL_TEMPLATES + (BARE_TEMPLATE,)}
    assert not train_skeletons & held_skeletons
    for row in held_rows:  # every word of a held-out caption occurred in some training caption
        assert set(row) <= train_words, decode(torch.tensor(row))
    train_pairs = set(zip(data.digit_train.tolist(), [COLOUR_NAMES[c] for c in data.colour_train.tolist()]))
    assert not train_pairs & HELD_OUT_COMBOS
    assert 0 < float(data.unseen_combo_test.float().mean()) < 0.3  # the test images include them
    assert data.x_train.shape[1:] == (3, 24, 24) and float(data.x_train.max()) <= 1.0


def test_training_captions_are_partial():
    data = load_caption_data(0)
    texts = [decode(r) for r in data.train_tokens[:300].flatten(0, 1)]
    digit_named = [any(w in t.split() for w in WORDS + tuple("0123456789")) for t in texts]
    assert 0.8 < sum(digit_named) / len(texts) < 0.97  # most captions name the digit, some only other attributes
    said = [sum(c in t for c in COLOUR_NAMES) + any(p in t for p in POSITIONS) + ("small" in t or "large" in t)
            for t in texts]
    assert sum(said) / len(texts) < 1.5  # of colour, size, position: about one said per caption, not all three
    assert all(s >= 1 for s, d in zip(said, digit_named) if not d)  # a digit-free caption says something
    assert len(set(texts[:8])) > 3  # an image's captions differ


def test_learning_rate_warms_up_then_decays_to_zero():
    assert abs(learning_rate(1e-3, 25, 800, warmup=50) - 1e-3 * 0.5 * 0.5 * (1 + math.cos(math.pi * 25 / 800))) < 1e-12
    assert abs(learning_rate(1e-3, 400, 800, warmup=50) - 0.5e-3) < 1e-12
    assert learning_rate(1e-3, 800, 800) == 0.0 and learning_rate(1e-3, 5, 10) > 0


def test_ridge_probe_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 10
    h = F.one_hot(y, 10).float() * 3 + 0.3 * torch.randn(200, 10, generator=g)
    assert ridge_probe(h[:150], y[:150], h[150:], y[150:]) == 1.0
    noise = torch.randn(200, 10, generator=g)
    assert ridge_probe(noise[:150], y[:150], noise[150:], y[150:]) < 0.4


def test_short_training_run_reads_digits_zero_shot():
    # Partial captions make the digit what tells a batch's pairs apart: zero-shot leaves chance within 150 steps
    # (with every attribute in every caption it stayed at chance for 200-300 steps of 128 pairs).
    cfg = replace(PRESETS["zero-shot"].config, batch_size=64, width=8, steps=150, eval_every=75, seed=0)
    snaps = list(snapshots(run(cfg, torch.device("cpu"))))
    first, last = snaps[0].metrics, snaps[-1].metrics
    assert [s.step for s in snaps] == [0, 10, 75, 150]  # an early snapshot, then every eval_every
    assert last["loss"] < snaps[2].metrics["loss"] < first["loss_chance"]
    assert first["zs_acc"] < 0.2 and last["zs_acc"] > 0.3  # chance is 10%: the held-out prompt reads digits
    assert last["r_at_5"] > first["r_at_5"] + 0.2  # held-out captions find their image
    assert last["probe_acc"] > first["probe_acc"]  # the frozen features carry more of the digit
    gap = lambda sim: sim.diagonal().mean() - (sim.sum() - sim.trace()) / 90  # noqa: E731
    assert gap(snaps[-1].arrays["sim"]) > gap(snaps[0].arrays["sim"]) + 0.1  # the diagonal lights up
    a = snaps[-1].arrays
    assert a["sim"].shape == (10, 10) and a["gallery"].shape[0] == 720 and a["pca_txt"].shape == (10, 2)
    assert any(k.startswith("text_encoder.") for k in a["text_state"])


def test_texts_translate_while_the_model_reads_english():
    """Claims say the step budget they are checked at; every control is labelled and shown in Chinese; figures
    translate their texts but keep the English prompt templates (the model's input)."""
    import dataclasses

    from dlviz.config import spec_of
    from dlviz.demos.clip import TARGET_STEPS, Config
    from dlviz.figures.clip import clip_curves, template_bars
    from dlviz.i18n import _, language

    for preset in PRESETS.values():
        assert preset.claim.max_steps == TARGET_STEPS and f"{TARGET_STEPS} steps" in preset.claim.text
    with language("zh"):
        for preset in PRESETS.values():
            assert _(preset.claim.text) != preset.claim.text and _(preset.note) != preset.note
        for f in dataclasses.fields(Config):
            spec = spec_of(f)
            if spec.widget:
                assert spec.label and _(spec.label) != spec.label and _(spec.help) != spec.help, f.name
        curves = clip_curves([{"step": 0, "zs_acc": 0.1, "temperature": 0.07, "loss_chance": 4.8}])
        assert [a.text for a in curves.layout.annotations][:3] == ["对称对比损失", "留出数据上的准确率", "温度 τ"]
        bars = template_bars({"zs_bare": 0.5, "zs_ensemble": 0.9}, PROMPT_TEMPLATES)
        names = list(bars.data[0].y)
        assert names[1:-1] == list(PROMPT_TEMPLATES) and names[-1] == "5 个模板的集成"
    assert list(template_bars({}, PROMPT_TEMPLATES).data[0].y)[-1] == "ensemble of the 5"
    from dlviz.figures.clip import shorten  # heatmap rows: captions cut at a word's end, never inside one
    assert shorten("yellow 2 in the centre, small") == "yellow 2 in the centre…" and shorten("a red one") == "a red one"
