"""Attention math against PyTorch's built-ins and closed forms; the two demos learn in a few steps."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlviz.data.seq_tasks import make_batch
from dlviz.demos import get_demo
from dlviz.demos.attention import Config, KernelConfig, alignment_mass, run_kernel
from dlviz.models.attention import (AdditiveAttention, MultiHeadAttention, compare_scoring, leave_one_out,
                                    masked_softmax, nadaraya_watson, positional_encoding, scaled_dot_product,
                                    softmax_sharpness)
from dlviz.models.transformer import TinyTransformer

CPU = torch.device("cpu")


def test_masked_softmax_zeroes_padding_and_matches_softmax_of_the_prefix():
    torch.manual_seed(0)
    scores = torch.randn(2, 3, 5)
    w = masked_softmax(scores, torch.tensor([2, 4]))
    assert torch.allclose(w.sum(-1), torch.ones(2, 3))
    assert (w[0, :, 2:] == 0).all() and (w[1, :, 4:] == 0).all()
    assert torch.allclose(w[0, :, :2], torch.softmax(scores[0, :, :2], -1))
    per_query = masked_softmax(scores, torch.tensor([[1, 2, 3], [5, 5, 1]]))
    assert torch.allclose(per_query[0, 0], torch.tensor([1.0, 0, 0, 0, 0]))
    assert torch.allclose(masked_softmax(scores), torch.softmax(scores, -1))


def test_scaled_dot_product_matches_torch_with_and_without_mask():
    torch.manual_seed(1)
    q, k, v = torch.randn(3, 4, 8), torch.randn(3, 6, 8), torch.randn(3, 6, 5)
    out, w = scaled_dot_product(q, k, v)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-5)
    lens = torch.tensor([2, 6, 3])
    keep = torch.arange(6)[None, None, :] < lens[:, None, None]  # True = may attend (torch's bool convention)
    out_m, w_m = scaled_dot_product(q, k, v, lens)
    assert torch.allclose(out_m, F.scaled_dot_product_attention(q, k, v, attn_mask=keep), atol=1e-5)
    assert (w_m[0, :, 2:] == 0).all()


def test_multi_head_attention_matches_nn_multiheadattention():
    torch.manual_seed(2)
    ref = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    mine = MultiHeadAttention(16, 4).load_from_torch(ref)
    x, mem = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 4:] = True
    for q, kv, kwargs in ((x, x, dict(attn_mask=causal)), (x, mem, dict(key_padding_mask=pad))):
        out_ref, w_ref = ref(q, kv, kv, average_attn_weights=False, **kwargs)
        out, w = mine(q, kv, kv, **kwargs)
        assert w.shape == (2, 4, 5, kv.shape[1])
        assert torch.allclose(out, out_ref, atol=1e-5) and torch.allclose(w, w_ref, atol=1e-6)


def test_additive_attention_is_the_formula_and_respects_the_mask():
    torch.manual_seed(3)
    att = AdditiveAttention(query_size=3, key_size=5, num_hiddens=4)
    q, k, v = torch.randn(2, 1, 3), torch.randn(2, 6, 5), torch.randn(2, 6, 2)
    out, w = att(q, k, v, torch.tensor([6, 2]))
    i = 4  # one score by hand: w_v^T tanh(W_q q + W_k k_i), example 0
    score = att.w_v(torch.tanh(att.W_q(q[0, 0]) + att.W_k(k[0, i])))
    manual = torch.stack([att.w_v(torch.tanh(att.W_q(q[0, 0]) + att.W_k(k[0, j]))) for j in range(6)]).squeeze(-1)
    assert torch.allclose(w[0, 0], torch.softmax(manual, 0), atol=1e-6) and score.shape == (1,)
    assert (w[1, 0, 2:] == 0).all() and torch.allclose(out, w @ v)


def test_scaling_by_sqrt_d_keeps_the_softmax_from_saturating():
    dims = (1, 16, 256)
    s = softmax_sharpness(dims, n_keys=10, n_queries=500)
    assert np.allclose(s["score_std"], np.sqrt(dims), rtol=0.15)
    assert s["entropy_unscaled"][2] < 0.3 < s["entropy_unscaled"][0]  # nearly one-hot at d = 256
    assert np.ptp(s["entropy_scaled"]) < 0.2 and s["max_unscaled"][2] > 0.85
    w = compare_scoring(8, 6, (2, 6))
    assert set(w) >= {"additive", "scaled dot product"} and (w["additive"][0, :, 2:] == 0).all()


def test_positional_encoding_closed_form_and_offset_invariance():
    P = positional_encoding(50, 16)
    assert P.shape == (50, 16)
    assert math.isclose(P[7, 4].item(), math.sin(7 / 10000 ** (4 / 16)), rel_tol=1e-5)
    assert math.isclose(P[7, 5].item(), math.cos(7 / 10000 ** (4 / 16)), rel_tol=1e-5)
    sim = P @ P.T
    assert torch.allclose(sim[3, 8], sim[20, 25], atol=1e-4)  # same offset, same similarity
    assert positional_encoding(10, 7).shape == (10, 7)  # odd width works


def test_nadaraya_watson_limits():
    x, y = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 5.0, 3.0])
    pred0, w0 = nadaraya_watson(torch.tensor([0.9]), x, y, w=0.0)
    assert torch.allclose(pred0, y.mean()[None]) and torch.allclose(w0, torch.full((1, 3), 1 / 3))
    sharp, _ = nadaraya_watson(torch.tensor([0.9, 2.2]), x, y, w=50.0)
    assert torch.allclose(sharp, torch.tensor([5.0, 3.0]))  # nearest neighbour
    assert leave_one_out(torch.arange(4.0)).tolist() == [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]


def test_sequence_tasks_and_their_source_positions():
    g = torch.Generator().manual_seed(0)
    for task in ("reverse", "sort", "copy"):
        b = make_batch(task, 16, 6, 5, g)
        assert torch.equal(torch.gather(b.src, 1, b.source), b.tgt)
        expected = {"reverse": b.src.flip(1), "sort": b.src.sort(1).values, "copy": b.src}[task]
        assert torch.equal(b.tgt, expected)
    assert b.decoder_input(5)[:, 0].eq(5).all() and torch.equal(b.decoder_input(5)[:, 1:], b.tgt[:, :-1])
    with pytest.raises(ValueError):
        make_batch("shuffle", 2, 3, 4, g)


def test_transformer_decoder_is_causal_and_maps_have_their_shapes():
    torch.manual_seed(0)
    model = TinyTransformer(vocab=6, max_len=5, d_model=16, heads=2, layers=2).eval()
    src, dec = torch.randint(0, 6, (3, 5)), torch.randint(0, 7, (3, 5))
    logits, maps = model(src, dec, return_attention=True)
    assert logits.shape == (3, 5, 6)
    assert {k: tuple(v.shape) for k, v in maps.items()} == {"enc_self": (3, 2, 2, 5, 5), "dec_self": (3, 2, 2, 5, 5),
                                                             "cross": (3, 2, 2, 5, 5)}
    assert torch.triu(maps["dec_self"][0, 0, 0], 1).abs().max() == 0  # no weight on the future
    changed = dec.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % 7
    assert torch.allclose(model(src, changed)[:, :3], logits[:, :3], atol=1e-5)
    assert model.generate(src, 5).shape == (3, 5)
    enc_only = TinyTransformer(vocab=6, max_len=5, d_model=16, heads=2, layers=1, decoder=False)
    assert set(enc_only(src, return_attention=True)[1]) == {"enc_self"}


def test_alignment_mass_of_a_perfect_anti_diagonal_is_one():
    source = torch.arange(4).flip(0).expand(2, 4)
    perfect = torch.eye(4).flip(1).expand(2, 3, 4, 4)
    assert torch.allclose(alignment_mass(perfect, source), torch.ones(3))
    assert torch.allclose(alignment_mass(torch.full((2, 3, 4, 4), 0.25), source), torch.full((3,), 0.25))


def test_sort_alignment_credits_any_position_holding_an_equal_symbol():
    src = torch.tensor([[3, 1, 3, 2]])
    source = torch.sort(src, dim=1, stable=True).indices  # [1, 3, 0, 2]: target 1 2 3 3
    # Outputs 3 and 4 (both a 3) look at the other 3: the stable-sort index calls that a miss, yet it is right.
    swapped = torch.eye(4)[torch.tensor([1, 3, 2, 0])].expand(1, 2, 4, 4)
    assert torch.allclose(alignment_mass(swapped, source), torch.full((2,), 0.5))
    assert torch.allclose(alignment_mass(swapped, source, src), torch.ones(2))
    wrong = torch.eye(4)[torch.tensor([0, 3, 2, 0])].expand(1, 2, 4, 4)  # output 1 (a 1) looks at a 3: a miss
    assert torch.allclose(alignment_mass(wrong, source, src), torch.full((2,), 0.75))
    b = make_batch("sort", 64, 8, 10, torch.Generator().manual_seed(0))
    uniform = torch.full((64, 1, 8, 8), 1 / 8)
    counts = (b.src[:, None, :] == b.tgt[:, :, None]).float().sum(-1)  # positions holding each output's symbol
    assert torch.allclose(alignment_mass(uniform, b.source, b.src), (counts / 8).mean().reshape(1))
    perfect = F.one_hot(b.source, 8).float()[:, None]
    assert torch.allclose(alignment_mass(perfect, b.source, b.src), torch.ones(1))


def test_kernel_regression_learns_a_sharper_kernel():
    snaps = list(run_kernel(replace(KernelConfig(), steps=20), CPU))
    first, last = snaps[0].metrics, snaps[-1].metrics
    assert last["train_loss"] < first["train_loss"] and last["w"] > first["w"] == 1.0
    assert first["mse_learned"] == pytest.approx(first["mse_nonparametric"])  # w = 1 is the fixed kernel
    assert snaps[-1].arrays["attn_learned"].shape == (51, 50)
    # The learned weights concentrate: the largest weight of each test row grows.
    assert snaps[-1].arrays["attn_learned"].max(1).mean() > snaps[0].arrays["attn_learned"].max(1).mean()


def test_transformer_learns_to_reverse_in_a_few_steps():
    from dlviz.runner import Runner

    cfg = replace(Config(), d_model=32, layers=1, heads=2, steps=80, eval_every=40, length=5, vocab=6)
    r = Runner(get_demo("transformer"), cfg)
    r.run_to_end()
    first, last = r.history[0], r.history[-1]
    assert r.status == "done" and last["step"] == 80
    assert last["train_loss"] < first["train_loss"]
    assert last["token_acc"] > first["token_acc"] + 0.2
    assert last["diag_mass"] > first["diag_mass"]
    assert r.latest.arrays["cross"].shape == (6, 1, 2, 5, 5)
    assert {"token_acc", "diag_mass", "train_seconds"} <= set(r.summary())  # the CLI's JSON


def test_kernel_cli_summary_has_the_issue_keys():
    from dlviz.runner import Runner

    r = Runner(get_demo("kernel-regression"), replace(KernelConfig(), steps=3))
    r.run_to_end()
    assert {"mse_nonparametric", "mse_learned", "w", "train_seconds"} <= set(r.summary())
