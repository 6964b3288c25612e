"""RNN topic: the Python scans against torch.nn, the sequence data, and the demo's metrics moving the right way."""

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch

from dlviz.data.sequences import ADDING_BASELINE_MSE, adding_problem, k_step_ahead, noisy_sine, recall_task
from dlviz.demos import get_demo
from dlviz.demos.base import DivergedError
from dlviz.demos.rnn import PRESETS, Config, K_STEPS, make_task, probe, run
from dlviz.models.rnn import RecurrentNet, gru_scan, lstm_scan, rnn_scan
from dlviz.runner import Runner

CPU = torch.device("cpu")


def _last(config, steps):
    """The snapshot at ``steps`` (or the last one) of a run."""
    snaps = list(itertools.islice(run(replace(config, steps=steps), CPU), 10_000))
    return snaps[0], snaps[-1]


# -- cells against PyTorch -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, layer, scan", [("rnn", torch.nn.RNN, rnn_scan), ("gru", torch.nn.GRU, gru_scan),
                                               ("lstm", torch.nn.LSTM, lstm_scan)])
def test_scans_match_torch_layers_with_the_same_weights(kind, layer, scan):
    torch.manual_seed(1)
    ref = layer(3, 11, batch_first=True)
    with torch.no_grad():  # make the weights large enough that a wrong gate order could not hide
        for p in ref.parameters():
            p.mul_(3.0)
    x = torch.randn(5, 17, 3)
    h0 = torch.randn(1, 5, 11)
    if kind == "lstm":
        c0 = torch.randn(1, 5, 11)
        want, _ = ref(x, (h0, c0))
        tr = scan(x, ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0, h0[0], c0[0])
        assert tr.cell.shape == (5, 17, 11)
    else:
        want, _ = ref(x, h0)
        tr = scan(x, ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0, h0[0])
    torch.testing.assert_close(tr.hidden, want, atol=1e-5, rtol=1e-5)
    for g in tr.gates.values():
        assert g.shape == (5, 17, 11) and 0 <= g.min() and g.max() <= 1


def test_gru_state_update_is_the_d2l_convex_combination():
    torch.manual_seed(0)
    net = RecurrentNet("gru", 2, 6, 1)
    x = torch.randn(4, 9, 2)
    _, tr = net.trace(x)
    w_ih, w_hh, b_ih, b_hh = net.weights()
    h_prev, z = tr.hidden[:, 2], tr.gates["update"][:, 3]
    r = tr.gates["reset"][:, 3]
    xi = x[:, 3] @ w_ih.T + b_ih
    hh = h_prev @ w_hh.T + b_hh
    cand = torch.tanh(xi[:, 12:] + r * hh[:, 12:])
    torch.testing.assert_close(tr.hidden[:, 3], z * h_prev + (1 - z) * cand)


def test_gru_scan_gates_and_states_equal_torch_gru_and_the_page_formula():
    """Gates and states of the scan = torch.nn.GRU's, step by step, with the candidate the page shows
    (reset gate after the product W_hh H); the Cho/d2l candidate (reset before the product) is a different function."""
    torch.manual_seed(3)
    ref = torch.nn.GRU(3, 7, batch_first=True)
    with torch.no_grad():
        for p in ref.parameters():
            p.mul_(3.0)
    x, h0 = torch.randn(4, 10, 3), torch.randn(1, 4, 7)
    with torch.no_grad():
        want, _ = ref(x, h0)
        tr = gru_scan(x, ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0, h0[0])
        (w_xr, w_xz, w_xh), (w_hr, w_hz, w_hh) = ref.weight_ih_l0.split(7), ref.weight_hh_l0.split(7)
        (b_xr, b_xz, b_xh), (b_hr, b_hz, b_hh) = ref.bias_ih_l0.split(7), ref.bias_hh_l0.split(7)
        torch.testing.assert_close(tr.hidden, want, atol=1e-6, rtol=1e-6)
        h, cho_gap = h0[0], 0.0
        for t in range(10):  # the page's formula, fed with torch's own previous state
            xt = x[:, t]
            r = torch.sigmoid(xt @ w_xr.T + b_xr + h @ w_hr.T + b_hr)
            z = torch.sigmoid(xt @ w_xz.T + b_xz + h @ w_hz.T + b_hz)
            cand = torch.tanh(xt @ w_xh.T + b_xh + r * (h @ w_hh.T + b_hh))
            torch.testing.assert_close(tr.gates["reset"][:, t], r, atol=1e-6, rtol=1e-6)
            torch.testing.assert_close(tr.gates["update"][:, t], z, atol=1e-6, rtol=1e-6)
            torch.testing.assert_close(z * h + (1 - z) * cand, want[:, t], atol=1e-6, rtol=1e-6)
            cho = torch.tanh(xt @ w_xh.T + b_xh + (r * h) @ w_hh.T + b_hh)
            cho_gap = max(cho_gap, float((z * h + (1 - z) * cho - want[:, t]).abs().max()))
            h = want[:, t]
    assert cho_gap > 1e-2


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_fast_forward_equals_trace(kind):
    torch.manual_seed(2)
    net = RecurrentNet(kind, 4, 8, 3, forget_bias=3.0, recurrent_gain=1.5)
    x = torch.randn(6, 12, 4)
    out, tr = net.trace(x)
    torch.testing.assert_close(out, net(x), atol=1e-5, rtol=1e-5)
    if kind == "lstm":
        assert torch.allclose(net.core.bias_ih_l0[8:16] + net.core.bias_hh_l0[8:16], torch.full((8,), 3.0))


def test_recurrent_gain_sets_orthogonal_blocks():
    net = RecurrentNet("gru", 2, 16, 1, recurrent_gain=2.0)
    for block in net.core.weight_hh_l0.detach().split(16, 0):
        torch.testing.assert_close(block @ block.T, 4.0 * torch.eye(16), atol=1e-4, rtol=1e-4)


# -- data ------------------------------------------------------------------------------------------------------
def test_adding_problem_marks_two_numbers_one_per_half_and_baseline_is_one_sixth():
    x, y = adding_problem(20_000, 50, torch.Generator().manual_seed(0))
    assert x.shape == (20_000, 50, 2) and y.shape == (20_000, 1)
    marks = x[..., 1]
    assert torch.all(marks.sum(1) == 2)
    assert torch.all(marks[:, :25].sum(1) == 1) and torch.all(marks[:, 25:].sum(1) == 1)
    torch.testing.assert_close(y[:, 0], (x[..., 0] * marks).sum(1))
    assert abs(((y - 1.0) ** 2).mean().item() - ADDING_BASELINE_MSE) < 0.01


def test_recall_task_target_is_the_first_symbol_and_query_is_last():
    x, y = recall_task(64, 7, torch.Generator().manual_seed(0), n_symbols=5)
    assert x.shape == (64, 9, 6)
    assert torch.equal(x[:, 0, :5].argmax(1), y)
    assert torch.all(x[:, -1, 5] == 1) and torch.all(x[:, :-1, 5] == 0)
    assert torch.all(x[:, :-1].sum(2) == 1)


def test_noisy_sine_windows_and_noise_level():
    s = noisy_sine(torch.Generator().manual_seed(0))
    assert s.series.shape == (1000,) and s.features.shape == (996, 4, 1) and s.labels.shape == (996, 1)
    torch.testing.assert_close(s.features[10, :, 0], s.series[10:14])
    assert s.labels[10, 0] == s.series[14]
    assert abs((s.series - torch.sin(0.01 * s.time)).std().item() - 0.2) < 0.02


def test_k_step_ahead_feeds_its_own_predictions():
    series = torch.arange(30, dtype=torch.float32)
    exact = k_step_ahead(lambda w: w[:, -1] + 1, series, tau=4, max_k=5)  # a perfect predictor stays exact
    rows = torch.arange(len(exact))
    for k in range(1, 6):
        torch.testing.assert_close(exact[:, 4 + k - 1], series[rows + 4 + k - 1])
    biased = k_step_ahead(lambda w: w[:, -1] + 1.5, series, tau=4, max_k=5)  # an error of 0.5 per step adds up
    torch.testing.assert_close(biased[:, 4 + 5 - 1] - exact[:, 4 + 5 - 1], torch.full((len(exact),), 2.5))


# -- the demo --------------------------------------------------------------------------------------------------
def test_presets_are_valid_and_default_is_adding_l50():
    assert PRESETS["adding-l50"].config == Config()
    assert Config().task == "adding" and Config().lag == 50
    assert {"adding-l50", "multistep", "exploding"} <= set(PRESETS)


def test_gru_remembers_where_the_plain_rnn_does_not():
    config = replace(Config(), lag=10, hidden=16, cells="rnn+gru", eval_every=50)
    first, last = _last(config, 200)
    m = last.metrics
    assert first.metrics["test_loss_gru"] > ADDING_BASELINE_MSE
    assert m["test_loss_gru"] < 0.05 and m["test_loss_gru"] < m["test_loss_rnn"] / 3
    assert m["seconds_gru"] > 0 and set(last.arrays["states"]) == {"rnn", "gru"}


def test_plain_rnn_gradient_vanishes_towards_early_inputs():
    config = Config()
    task = make_task(config)
    snap = next(run(config, CPU))
    out = probe(config, snap.arrays["states"], task, index=3)
    g_rnn, g_gru = out["rnn"]["input_grad"], out["gru"]["input_grad"]
    assert g_rnn.shape == (50,) and np.all(g_rnn >= 0)
    assert g_rnn[0] < 1e-3 * g_rnn[-1]  # geometric decay over 50 steps
    assert out["gru"]["gates"]["update"].shape == (50, 32) and out["lstm"]["gates"]["forget"].shape == (50, 32)
    assert out["gru"]["pca_path"].shape == (50, 2) and g_gru.shape == (50,)


def test_exploding_preset_explodes_without_clipping_and_survives_with_it():
    config = replace(PRESETS["exploding"].config, eval_every=25)
    _, last = _last(config, 25)
    assert "rnn" in last.arrays["diverged"] and "clipping" in last.arrays["diverged"]["rnn"]
    assert "test_loss_rnn" not in last.metrics and "test_loss_gru" in last.metrics  # the GRU trains on
    _, clipped = _last(replace(config, clip=1.0), 50)
    m = clipped.metrics
    assert not clipped.arrays["diverged"]
    assert m["grad_norm_rnn"] > 10 and m["clipped_rnn"] > 0.5 and np.isfinite(m["test_loss_rnn"])


def test_all_cells_diverging_stops_the_run_with_a_message():
    config = replace(PRESETS["exploding"].config, cells="rnn", eval_every=25, steps=25)
    with pytest.raises(DivergedError, match="clipping"):
        list(run(config, CPU))


def test_multistep_error_grows_with_horizon():
    first, last = _last(replace(PRESETS["multistep"].config, cells="gru", eval_every=150), 150)
    m = last.metrics
    assert m["test_loss_gru"] < first.metrics["test_loss_gru"]
    assert m["mse_k1_gru"] < m["mse_k16_gru"] < m["mse_k64_gru"]
    table = last.arrays["kstep"]["gru"]
    assert table.shape == (1000 - 4 - max(K_STEPS) + 1, 4 + max(K_STEPS))


def test_cli_summary_has_cells_task_and_seconds():
    demo = get_demo("rnn")
    r = Runner(demo, replace(Config(), cells="gru+lstm", lag=5, steps=20), CPU)
    r.run_to_end()
    out = r.summary()
    assert r.status == "done" and out["task"] == "adding" and out["train_seconds"] > 0
    assert set(out["cells"]) == {"gru", "lstm"}
    assert {"test_mse", "steps", "train_seconds"} <= set(out["cells"]["gru"]) and out["cells"]["gru"]["steps"] == 20


def test_log_axes_label_1_2_5_over_few_decades_and_one_tick_per_decade_over_many():
    from dlviz.figures.rnn import _log_dtick, training_curves

    assert _log_dtick([0.3, 6.0]) == "D2"  # plotly labelled 1, 9, 8, ..., 2 here on a 200 px chart
    assert _log_dtick([1e-15, 1e-3, 0.0, float("nan")]) == 1  # zeros and NaN ignored: 12 decades
    assert _log_dtick([]) == "D2"
    history = [{"step": s, "test_loss_gru": 0.2 / (s + 1), "train_loss_gru": 0.2, "grad_norm_gru": 1e-12 * 10 ** s}
               for s in range(6)]
    fig = training_curves(history, ["gru"], classify=False)
    assert fig.layout.yaxis.dtick == "D2" and fig.layout.yaxis2.dtick == 1
