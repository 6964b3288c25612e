"""Landscape and curvature: Hessian-vector products against torch's Hessian, Lanczos against a full
eigendecomposition, batched slices against the point-by-point loop, the slice at the origin equals the model's
loss, the model is left untouched, and the live demo trains."""

import math
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from dlviz.analysis import landscape as ls
from dlviz.analysis.hessian import HessianOperator, hessian_extreme_eigs, lanczos, power_iteration
from dlviz.data.digits import load_digits_split
from dlviz.demos import loss_surfaces as lsd
from dlviz.models.lenet import LeNet
from dlviz.models.mlp import MLP


def _tiny():
    torch.manual_seed(0)
    model = MLP(3, (4,), 2, "tanh")
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    return model, x, y


def _full_hessian(model, x, y):
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(flat):
        params, i = {}, 0
        for k, s in zip(names, shapes):
            params[k] = flat[i:i + s.numel()].view(s)
            i += s.numel()
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(loss, flat0)


def test_hvp_matches_autograd_hessian():
    model, x, y = _tiny()
    H = _full_hessian(model, x, y)
    op = HessianOperator(model, x, y)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = torch.randn(op.n, generator=g)
        assert torch.allclose(op(v), H @ v, atol=1e-5)


def test_lanczos_and_power_iteration_find_the_extreme_eigenvalues():
    model, x, y = _tiny()
    H = _full_hessian(model, x, y).double()
    true = torch.linalg.eigvalsh(H)
    op = HessianOperator(model, x, y)
    ritz = lanczos(op, op.n, k=op.n)
    assert abs(ritz[-1] - true[-1]) < 1e-4 and abs(ritz[0] - true[0]) < 1e-4
    top, _ = power_iteration(op, op.n, iters=500, tol=1e-9)
    assert abs(top - float(true[true.abs().argmax()])) < 1e-3
    out = hessian_extreme_eigs(model, x, y, k=op.n)
    assert out["lambda_max"] >= out["lambda_min"] and out["products"] <= op.n


def test_batched_slice_matches_loop_and_origin_is_the_model_loss():
    d = load_digits_split(8)
    x, y = d.x_train[:64], d.y_train[:64]
    torch.manual_seed(0)
    for model in (LeNet(8, "relu", "max"), LeNet(8, "sigmoid", "avg"), LeNet(8, "relu", "avg"),
                  MLP(64, (16, 16), 10, "relu", True)):
        if isinstance(model, MLP):  # give BatchNorm non-trivial running statistics
            model.train()
            with torch.no_grad():
                model(x)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        training = model.training
        center = ls.params_of(model)
        d1, d2 = ls.filter_normalized_directions(center, seed=3)
        coords = np.linspace(-1, 1, 3)
        batched = ls.loss_grid(model, center, d1, d2, coords, coords, x, y, method="batched")
        loop = ls.loss_grid(model, center, d1, d2, coords, coords, x, y, method="loop")
        assert np.allclose(batched, loop, atol=1e-5)
        model.eval()
        with torch.no_grad():
            assert abs(batched[1, 1] - float(F.cross_entropy(model(x), y))) < 1e-5
        model.train(training)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched
        assert len(np.unique(np.round(batched, 4))) > 4  # the slice is not flat


def test_batched_matches_loop_with_bias_directions_chunks_and_large_maps():
    """Directions that move every parameter (biases too, as on the 1-D interpolation), chunks that split the
    points unevenly, and LeNet on 16x16 inputs (the grouped-convolution path)."""
    torch.manual_seed(1)
    for size, act, pool in ((8, "relu", "max"), (16, "relu", "max"), (16, "sigmoid", "avg")):
        d = load_digits_split(size)
        x, y = d.x_train[:32], d.y_train[:32]
        model = LeNet(size, act, pool)
        center = ls.params_of(model)
        dirs = [{k: 0.3 * torch.randn_like(v) for k, v in center.items()} for _ in range(2)]
        coeffs = np.random.default_rng(0).uniform(-1, 1, (7, 2)).astype(np.float32)
        batched = ls.losses_at(model, center, dirs, coeffs, x, y, method="batched", chunk=3)
        loop = ls.losses_at(model, center, dirs, coeffs, x, y, method="loop")
        assert np.allclose(batched, loop, atol=1e-5), (size, act, pool)
        assert np.ptp(batched) > 1e-3


def test_filter_normalization():
    torch.manual_seed(0)
    params = ls.params_of(LeNet(8))
    (d,) = ls.filter_normalized_directions(params, seed=0, n=1)
    w, dw = params["conv2.weight"], d["conv2.weight"]
    assert torch.allclose(dw.flatten(1).norm(dim=1), w.flatten(1).norm(dim=1), rtol=1e-4)
    assert torch.count_nonzero(d["conv2.bias"]) == 0  # biases are not perturbed


def test_trajectory_pca():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 30)[:, None]
    path = t * rng.normal(size=(1, 50)) + 0.1 * t**2 * rng.normal(size=(1, 50))
    out = ls.trajectory_pca(path)
    assert np.allclose(out["coords"][-1], 0) and out["explained"][0] > 0.9 and out["explained"].sum() <= 1 + 1e-9


def test_landscape_demo_trains_and_views_are_consistent():
    cfg = replace(lsd.LSConfig(), model="mlp", steps=40, every=20, grid=5)
    snaps = list(lsd.run_landscape(cfg, torch.device("cpu")))
    first, last = snaps[0], snaps[-1]
    assert last.metrics["landscape_loss"] < first.metrics["landscape_loss"]
    assert len(last.arrays["path"]) == 3
    sl = lsd.slice_2d(cfg, last, "cpu")
    assert abs(sl["center_loss"] - last.metrics["landscape_loss"]) < 1e-5
    assert abs(sl["model_loss"] - sl["center_loss"]) < 1e-5
    line = lsd.interpolation(cfg, last, "cpu", n=5)  # alphas -0.5, 0, 0.5, 1, 1.5
    assert abs(line["train"][1] - first.metrics["landscape_loss"]) < 1e-4
    assert abs(line["train"][3] - last.metrics["landscape_loss"]) < 1e-4
    pca = lsd.pca_path(cfg, last, "cpu", n=5)
    assert pca["losses"].shape == (5, 5) and pca["coords"].shape == (3, 2)


def test_stability_threshold_is_where_torch_optim_starts_to_diverge_on_a_quadratic():
    """Gradient descent on λθ²/2 is stable iff λ < 2/η; heavy-ball momentum (PyTorch's form) iff λ < (2 + 2β)/η."""
    lr = 0.1
    for name, opt_cls in (("sgd", lambda p: torch.optim.SGD(p, lr=lr)),
                          ("momentum", lambda p: torch.optim.SGD(p, lr=lr, momentum=lsd.MOMENTUM_BETA))):
        limit = lsd.stability_threshold(name, lr)
        for factor, stable in ((0.97, True), (1.03, False)):
            theta = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
            opt = opt_cls([theta])
            for _ in range(600):
                opt.zero_grad()
                (0.5 * factor * limit * theta ** 2).sum().backward()
                opt.step()
            final = abs(theta.item()) if torch.isfinite(theta).all() else math.inf
            assert (final < 1e-3) == stable, (name, factor, final)
    assert lsd.stability_threshold("sgd", 0.3) == 2 / 0.3 and lsd.stability_threshold("adam", 0.01) is None


def test_curvature_note_follows_the_measured_lambda_min():
    assert "negative curvature" in lsd.curvature_note(4.0, -0.4) and "saddle" in lsd.curvature_note(4.0, -0.4)
    flat = lsd.curvature_note(4.0, -0.009)
    assert "≈ 0" in flat and "saddle" not in flat
    assert "no negative curvature" in lsd.curvature_note(4.0, 0.2) and "saddle" not in lsd.curvature_note(4.0, 0.2)


def test_sharpness_twins_report_weight_norms_and_the_stability_limit():
    cfg = replace(lsd.LSConfig(), model="mlp-2d", steps=20, lr=0.3)
    out = lsd.sharpness_by_batch(cfg, "cpu", small=8, large=256)
    for row in out.values():
        assert row["threshold"] == 2 / 0.3 and row["weight_norm"] > 0 and row["steps"] == 20
    assert out[8]["weight_norm"] != out[256]["weight_norm"]
    text = lsd.sharpness_caption({f"batch {k}": v for k, v in out.items()})
    assert "‖θ‖" in text and "2/η" in text and "of the stability limit" in text


def test_long_paths_get_the_same_top_directions_from_the_randomized_svd():
    """A path past 600 points takes the randomized SVD (a full one of 5,000 x 21,386 took minutes): same top two."""
    import numpy as np

    from dlviz.analysis.landscape import _top_singular

    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.standard_normal((700, 900)) * 0.05 + np.outer(np.linspace(0, 1, 700), rng.standard_normal(900))
                     + np.outer(np.sin(np.linspace(0, 6, 700)), rng.standard_normal(900)), axis=0)
    walk -= walk.mean(0)
    s_fast, v_fast = _top_singular(walk, 2)
    _, s, vt = np.linalg.svd(walk, full_matrices=False)
    np.testing.assert_allclose(s_fast, s[:2], rtol=1e-6)
    np.testing.assert_allclose(np.abs((v_fast * vt[:2]).sum(1)), 1.0, atol=1e-6)
