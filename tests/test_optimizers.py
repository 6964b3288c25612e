"""Optimizer trajectories against their textbook recurrences, the d2l presets, schedules, the condition-number
formulas and the mini-batch paths."""

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from dlviz.analysis.schedules import SCHEDULES, lr_multipliers
from dlviz.analysis.surfaces import SURFACES
from dlviz.analysis.trajectories import (OPTIMIZERS, Race, batch_size_paths, condition_quadratic, max_curvature,
                                         optimal_settings, pca_plane, plane_loss, quadratic_rate, steps_to_converge, trajectory)
from dlviz.demos import get_demo
from dlviz.demos.optimizers import PRESETS, Config, NetConfig, network_plane, run, run_network
from dlviz.runner import Runner

F = SURFACES["d2l-quadratic"].fn  # 0.1 x1^2 + 2 x2^2
START, STEPS = (-5.0, -2.0), 20


def grad(x):
    return np.array([0.2 * x[0], 4.0 * x[1]])


def reference(name: str, lr: float, steps: int = STEPS, beta=0.5, gamma=0.9, beta1=0.9, beta2=0.999,
              weight_decay=0.1) -> np.ndarray:
    """The textbook update rules (d2l chapter 12 notation; eps where torch puts it), in float64 numpy."""
    x = np.array(START)
    v, s = np.zeros(2), np.zeros(2)
    path = [x.copy()]
    for t in range(1, steps + 1):
        g = grad(x)
        if name == "sgd":
            x = x - lr * g
        elif name in ("momentum", "nesterov"):
            v = beta * v + g
            x = x - lr * (g + beta * v if name == "nesterov" else v)
        elif name == "adagrad":
            s = s + g**2
            x = x - lr * g / (np.sqrt(s) + 1e-10)
        elif name == "rmsprop":
            s = gamma * s + (1 - gamma) * g**2
            x = x - lr * g / (np.sqrt(s) + 1e-8)
        elif name in ("adam", "adamw"):
            if name == "adamw":
                x = x * (1 - lr * weight_decay)
            v = beta1 * v + (1 - beta1) * g
            s = beta2 * s + (1 - beta2) * g**2
            x = x - lr * (v / (1 - beta1**t)) / (np.sqrt(s / (1 - beta2**t)) + 1e-8)
        path.append(x.copy())
    return np.array(path)


CASES = [("sgd", 0.4, {}), ("momentum", 0.6, {"beta": 0.5}), ("momentum", 0.6, {"beta": 0.25}),
         ("nesterov", 0.3, {"beta": 0.5}), ("adagrad", 0.4, {}), ("adagrad", 2.0, {}),
         ("rmsprop", 0.4, {"gamma": 0.9}), ("adam", 0.4, {"beta1": 0.9}), ("adamw", 0.4, {"weight_decay": 0.1})]


@pytest.mark.parametrize("name,lr,hyper", CASES)
def test_torch_optimizer_matches_textbook_recurrence(name, lr, hyper):
    path = trajectory(F, START, name, STEPS, lr, **hyper)
    ref = reference(name, lr, **hyper)
    assert path.shape == (STEPS + 1, 2)
    np.testing.assert_allclose(path, ref, atol=1e-6, rtol=0)


def test_every_registered_optimizer_is_checked():
    assert {c[0] for c in CASES} == set(OPTIMIZERS)


def test_d2l_numbers():
    # The final points d2l prints for these runs (chapter 12: gd, momentum, adagrad, rmsprop).
    np.testing.assert_allclose(trajectory(F, START, "sgd", 20, 0.4)[-1], [-0.943467, -0.000073], atol=1e-6)
    np.testing.assert_allclose(trajectory(F, START, "momentum", 20, 0.6, beta=0.5)[-1], [0.007188, 0.002553],
                               atol=1e-6)
    np.testing.assert_allclose(trajectory(F, START, "adagrad", 20, 0.4)[-1], [-2.382563, -0.158591], atol=1e-6)


def _run_to_end(config, max_snaps=2000):
    snaps = list(itertools.islice(run(config, torch.device("cpu")), max_snaps))
    return snaps[-1]


def test_d2l_quadratic_preset_races_the_five_named_optimizers():
    last = _run_to_end(PRESETS["d2l-quadratic"].config)
    assert list(last.arrays["paths"]) == ["sgd", "momentum", "adagrad", "rmsprop", "adam"]
    assert last.step == 20
    np.testing.assert_allclose(last.arrays["paths"]["rmsprop"], reference("rmsprop", 0.4), atol=1e-6)
    # Momentum and RMSProp end closer to the minimum than plain gradient descent.
    d = {n: np.linalg.norm(p[-1]) for n, p in last.arrays["paths"].items()}
    assert d["momentum"] < d["sgd"] and d["rmsprop"] < d["sgd"]


def test_diverging_preset_diverges_and_is_stopped_not_crashed():
    last = _run_to_end(PRESETS["gd-lr-0.6"].config)
    path, status = last.arrays["paths"]["sgd"], last.arrays["status"]["sgd"]
    assert status == "diverged"
    # Along x2 each step multiplies by 1 - 0.6 * 4 = -1.4: growing and alternating in sign.
    np.testing.assert_allclose(path[:, 1], -2.0 * (-1.4) ** np.arange(len(path)), rtol=1e-9)
    assert abs(path[-1, 1]) > 10 and math.isfinite(last.metrics["loss_sgd"])
    r = Runner(get_demo("optimizers"), PRESETS["gd-lr-0.6"].config)
    r.run_to_end()
    assert r.status == "done" and r.summary()["runs"]["sgd"]["status"] == "diverged"


def test_momentum_rescues_the_diverging_learning_rate():
    last = _run_to_end(PRESETS["momentum-0.5"].config)
    assert last.arrays["status"] == {"sgd": "diverged", "momentum": "running"}
    assert np.linalg.norm(last.arrays["paths"]["momentum"][-1]) < 0.01


def test_saddle_gradient_descent_stalls_and_momentum_escapes():
    last = _run_to_end(PRESETS["saddle"].config)
    paths = last.arrays["paths"]
    gd = paths["sgd"]
    assert np.linalg.norm(gd[-1]) < 0.05 and abs(gd[-1, 1]) < 0.05  # sitting at the saddle (0, 0)
    assert abs(paths["momentum"][-1, 1]) > 2 and last.arrays["status"]["momentum"] == "escaped"
    assert abs(paths["adam"][-1, 1]) > 2
    assert last.metrics["loss_momentum"] < last.metrics["loss_sgd"]


def test_saddle_noise_escapes():
    stalled = _run_to_end(replace(PRESETS["saddle-noise"].config, noise=0.0)).arrays["paths"]["sgd"]
    noisy = _run_to_end(PRESETS["saddle-noise"].config).arrays["paths"]["sgd"]
    assert abs(stalled[-1, 1]) < 0.05 < 0.5 < abs(noisy[-1, 1])


def test_noise_is_seeded_and_shared_by_racers():
    cfg = replace(Config(), noise=0.3)
    a, b = _run_to_end(cfg), _run_to_end(cfg)
    np.testing.assert_array_equal(a.arrays["paths"]["sgd"], b.arrays["paths"]["sgd"])
    c = _run_to_end(replace(cfg, seed=1))
    assert not np.allclose(a.arrays["paths"]["sgd"], c.arrays["paths"]["sgd"])


def test_summary_json_shape():
    r = Runner(get_demo("optimizers"), PRESETS["d2l-quadratic"].config)
    r.run_to_end()
    runs = r.summary()["runs"]
    assert set(runs) == {"sgd", "momentum", "adagrad", "rmsprop", "adam"}
    for v in runs.values():
        assert len(v["final"]) == 2 and math.isfinite(v["loss"]) and "steps_to_converge" in v
    np.testing.assert_allclose(runs["sgd"]["final"], [-0.943467, -0.000073], atol=1e-6)


def test_steps_to_converge():
    path = trajectory(F, START, "momentum", 200, 0.6, beta=0.5)
    k = steps_to_converge(path, [(0.0, 0.0)])
    assert k is not None and np.linalg.norm(path[k]) < 1e-3 <= np.linalg.norm(path[k - 1])
    assert steps_to_converge(path[:5], [(0.0, 0.0)]) is None
    assert steps_to_converge(path, ()) is None


@pytest.mark.parametrize("kind", SCHEDULES)
def test_schedules_drive_the_optimizers_lr(kind):
    m = lr_multipliers(kind, 40)
    assert m.shape == (40,) and m.max() <= 1.0 + 1e-12 and m.min() >= 0
    race = Race(F, START, {"sgd": {"lr": 0.2}}, 40, schedule=kind)
    for _ in range(40):
        race.step()
    np.testing.assert_allclose(race.racers["sgd"].lrs, 0.2 * m)
    if kind == "constant":
        assert np.all(m == 1)
    elif kind == "warmup-linear":
        assert m[0] < m[3] and m[3] == pytest.approx(1.0) and m[-1] < 0.1
    else:
        assert m[0] == 1.0 and m[-1] < 0.2 and np.all(np.diff(m) <= 1e-12)


def test_condition_number_optima_match_grid_and_torch():
    kappa = 50.0
    best = optimal_settings(kappa)
    lrs = np.linspace(1e-4, 0.2, 4001)
    gd_rate = quadratic_rate(lrs, 0.0, (1.0, kappa))
    assert lrs[gd_rate.argmin()] == pytest.approx(best["gd_lr"], abs=1e-4)
    assert gd_rate.min() == pytest.approx(best["gd_rate"], abs=1e-4)
    lr_g, beta_g = np.meshgrid(np.linspace(0.01, 0.3, 300), np.linspace(0, 0.95, 300))
    mom = quadratic_rate(lr_g, beta_g, (1.0, kappa))
    assert mom.min() == pytest.approx(best["momentum_rate"], abs=5e-3) and mom.min() < gd_rate.min() - 0.1
    # The measured contraction of torch's SGD matches the predicted rate.
    f = condition_quadratic(kappa)
    path = trajectory(f, (1.0, 1.0), "sgd", 120, best["gd_lr"])
    err = np.linalg.norm(path, axis=1)
    assert (err[-1] / err[60]) ** (1 / 60) == pytest.approx(best["gd_rate"], rel=1e-6)
    mom_path = trajectory(f, (1.0, 1.0), "momentum", 120, best["momentum_lr"], beta=best["momentum_beta"])
    assert np.linalg.norm(mom_path[-1]) < 1e-3 * err[-1]


def test_max_curvature_of_the_quadratic():
    assert max_curvature(F, START) == pytest.approx(4.0)


def test_batch_size_noise():
    runs = batch_size_paths((1, 32, 1000), steps=150, lr=0.05, seed=0)
    for r in runs.values():
        assert r["w"].shape == (151, 2) and r["loss"][-1] < 0.01 * r["loss"][0]
        np.testing.assert_allclose(r["w"][-1], [2.0, -3.4], atol=0.15)

    def jitter(w):  # mean size of the second difference: how much the path wiggles
        return np.linalg.norm(np.diff(w, 2, axis=0), axis=1).mean()

    assert jitter(runs[1]["w"]) > 3 * jitter(runs[32]["w"]) > 3 * jitter(runs[1000]["w"])


def test_pca_plane_recovers_a_planar_path():
    rng = np.random.default_rng(0)
    d = np.linalg.qr(rng.normal(size=(50, 2)))[0].T  # two orthonormal directions in R^50
    origin = rng.normal(size=50)
    t = np.linspace(0, 1, 30)[:, None]
    trajs = {"a": origin + t * 3 * d[0] + t**2 * d[1], "b": origin - t * d[1]}
    basis, coords, explained = pca_plane(trajs, origin)
    assert explained.sum() == pytest.approx(1.0)
    for name, path in trajs.items():  # the plane holds the paths exactly: projecting back loses nothing
        np.testing.assert_allclose(origin + coords[name] @ basis, path, atol=1e-9)
    np.testing.assert_allclose(coords["a"][0], [0, 0], atol=1e-12)


def test_network_optimizers_share_init_and_learn():
    cfg = NetConfig(sgd=True, momentum=False, rmsprop=False, adam=True, steps=60, eval_every=20)
    snaps = list(run_network(cfg, torch.device("cpu")))
    first, last = snaps[0], snaps[-1]
    p = last.arrays["params"]
    np.testing.assert_array_equal(p["sgd"][0], p["adam"][0])  # one initialization for every copy
    assert not np.allclose(p["sgd"][-1], p["adam"][-1])
    for n in ("sgd", "adam"):
        assert last.metrics[f"loss_{n}"] < first.metrics[f"loss_{n}"]
    assert last.metrics["loss_adam"] < last.metrics["loss_sgd"]  # Adam leaves the flat start region faster
    plane = network_plane(cfg, last, n=5)
    assert plane["L"].shape == (5, 5) and np.isfinite(plane["L"]).all()
    # At the plane's origin the loss is the loss of the shared initialization.
    import torch.nn.functional as F

    from dlviz.demos.optimizers import make_net, moons

    x, y = moons(cfg.seed)
    basis = np.eye(len(last.arrays["init"]))[:2]
    _, _, L0 = plane_loss(make_net(cfg.hidden), last.arrays["init"], basis, x, lambda out: F.cross_entropy(out, y),
                          (0.0, 0.0, 0.0, 0.0), n=1)
    assert L0[0, 0] == pytest.approx(first.metrics["loss_sgd"], rel=1e-5)


def _final_loss(slug: str, name: str, lr: float, steps: int = STEPS, **hyper) -> float:
    s = SURFACES[slug]
    start = START if slug == "d2l-quadratic" else s.start
    return s.value(*trajectory(s.fn, start, name, steps, lr, **hyper)[-1])


def test_rotating_the_quadratic_removes_the_diagonal_preconditioners_advantage():
    """AdaGrad, RMSProp and Adam rescale coordinates: they fix 0.1 x1^2 + 2 x2^2 because it is axis-aligned. On the
    same quadratic turned by 45 degrees (same start relative to the valley) SGD and momentum end exactly as
    before (rotation-equivariant), while each adaptive method's advantage over SGD, log(loss_SGD / loss), shrinks."""
    rot = SURFACES["rotated-quadratic"]
    x, y = rot.start
    assert rot.value(x, y) == pytest.approx(F(torch.tensor(-5.0), torch.tensor(-2.0)).item())
    for name, lr, hyper in (("sgd", 0.4, {}), ("momentum", 0.6, {"beta": 0.5})):
        assert _final_loss("rotated-quadratic", name, lr, **hyper) == pytest.approx(
            _final_loss("d2l-quadratic", name, lr, **hyper), rel=1e-9)
    sgd = _final_loss("d2l-quadratic", "sgd", 0.4)

    def advantage(slug, name, lr, **hyper):
        return math.log(sgd / _final_loss(slug, name, lr, **hyper))

    # Adam where it clearly wins on the aligned quadratic (lr 0.5, beta1 0.5): about 700x below SGD's loss there,
    # above SGD's on the rotated one.
    adam = {s: advantage(s, "adam", 0.5, beta1=0.5) for s in ("d2l-quadratic", "rotated-quadratic")}
    assert adam["d2l-quadratic"] > 5 and adam["rotated-quadratic"] < 0
    for name, lr, hyper in (("rmsprop", 0.4, {"gamma": 0.9}), ("adagrad", 0.4, {}), ("adam", 0.4, {"beta1": 0.9})):
        drop = advantage("d2l-quadratic", name, lr, **hyper) - advantage("rotated-quadratic", name, lr, **hyper)
        assert drop > 1.0, (name, drop)  # the preset's racers: each loses more than a factor e against SGD


def test_rotated_quadratic_preset_claim_holds():
    r = Runner(get_demo("optimizers"), PRESETS["rotated-quadratic"].config)
    r.run_to_end()
    assert PRESETS["rotated-quadratic"].claim.holds(r.summary())


def test_nesterov_with_zero_momentum_is_sgd():
    """The beta slider reaches 0: torch rejects nesterov=True without momentum; the rule is then plain SGD."""
    w = [torch.nn.Parameter(torch.tensor([1.0, -2.0])), torch.nn.Parameter(torch.tensor([1.0, -2.0]))]
    opts = [OPTIMIZERS["nesterov"].make([w[0]], 0.1, beta=0.0), OPTIMIZERS["sgd"].make([w[1]], 0.1)]
    for _ in range(3):
        for p, opt in zip(w, opts):
            opt.zero_grad()
            (p ** 2).sum().backward()
            opt.step()
    assert torch.equal(w[0], w[1])
