"""Analytic surfaces: derivatives against finite differences, every registered surface's critical points and
their kinds, descent near a saddle (plateau, then escape), and MSE vs cross-entropy from a wrong corner."""

import numpy as np
import pytest

from dlviz.analysis.critical_points import (classify, curve_critical_points, derivatives, find_critical_points,
                                            gradient_descent)
from dlviz.analysis.surfaces import CURVES, SURFACES, two_logit_surfaces
from dlviz.demos.loss_surfaces import CPConfig, run_critical_points

# (x, y, kind) that must be found for each registered surface, and how many points in total.
KNOWN = {
    "saddle": ([(0, 0, "saddle")], 1),
    "monkey-saddle": ([(0, 0, "degenerate")], 1),
    "lee": ([(0, 0, "saddle"), (1, 1, "degenerate"), (-1, -1, "degenerate")], None),
    "rosenbrock": ([(1, 1, "minimum")], 1),
    "himmelblau": ([(3, 2, "minimum"), (-2.805118, 3.131312, "minimum"), (-3.779310, -3.283186, "minimum"),
                    (3.584428, -1.848126, "minimum"), (-0.270845, -0.923039, "maximum")], 9),
    "six-hump-camel": ([(0.089842, -0.712656, "minimum"), (-0.089842, 0.712656, "minimum"), (0, 0, "saddle")], 15),
    "d2l-quadratic": ([(0, 0, "minimum")], 1),
    "rotated-quadratic": ([(0, 0, "minimum")], 1),
}

def test_every_surface_has_known_points():
    assert set(KNOWN) == set(SURFACES)

@pytest.mark.parametrize("slug", list(SURFACES))
def test_critical_points_and_kinds(slug):
    points = find_critical_points(SURFACES[slug])
    expected, count = KNOWN[slug]
    for x, y, kind in expected:
        near = [p for p in points if abs(p.x - x) < 2e-3 and abs(p.y - y) < 2e-3]
        if kind == "degenerate" and slug == "lee":  # a curve of minima: some point on w1 w2 = 1 near it
            near = [p for p in points if p.kind == kind and abs(p.x * p.y - 1) < 1e-6 and np.sign(p.x) == np.sign(x)]
        assert near and near[0].kind == kind, (slug, x, y, kind, [p.as_dict() for p in points])
    if count is not None:
        assert len(points) == count
    kinds = {p.kind for p in points}
    if slug == "six-hump-camel":
        assert sum(p.kind == "minimum" for p in points) == 6 and sum(p.kind == "saddle" for p in points) == 7
    for p in points:  # the gradient really vanishes and the kind matches the eigenvalue signs
        _, g, _ = derivatives(SURFACES[slug], np.array([p.x]), np.array([p.y]))
        assert np.linalg.norm(g) < 1e-5
    assert kinds <= {"minimum", "maximum", "saddle", "degenerate"}

def test_registered_minima_are_critical():
    for s in SURFACES.values():
        for x, y in s.minima:
            _, g, H = derivatives(s, np.array([x]), np.array([y]))
            assert np.linalg.norm(g) < 1e-3, s.slug
            assert classify(np.linalg.eigvalsh(H[0])) in ("minimum", "degenerate"), s.slug

def test_lee_hessian_at_origin_and_finite_differences():
    _, _, H = derivatives(SURFACES["lee"], np.array([0.0]), np.array([0.0]))
    assert np.allclose(H[0], [[0, -2], [-2, 0]])
    s, h = SURFACES["six-hump-camel"], 1e-5
    x, y = np.array([0.3]), np.array([-0.4])
    f, g, H = derivatives(s, x, y)
    fd = [(s.value(x[0] + h, y[0]) - s.value(x[0] - h, y[0])) / (2 * h),
          (s.value(x[0], y[0] + h) - s.value(x[0], y[0] - h)) / (2 * h)]
    assert np.allclose(g[0], fd, atol=1e-6) and np.allclose(H[0], H[0].T)

def test_classify():
    assert classify([1, 2]) == "minimum" and classify([-1, -2]) == "maximum"
    assert classify([-1, 2]) == "saddle" and classify([0, 2]) == "degenerate" and classify([0, 0]) == "degenerate"

def test_curves():
    cubic = curve_critical_points(CURVES["cubic"])
    assert len(cubic) == 1 and abs(cubic[0][0]) < 1e-6 and cubic[0][1] == "degenerate"
    kinds = [(round(x, 3), k) for x, k, _ in curve_critical_points(CURVES["x-cos-pi-x"])]
    assert kinds == [(-0.274, "minimum"), (0.274, "maximum"), (1.090, "minimum")]

def test_descent_stalls_at_the_saddle_and_the_escape_step_does_not():
    cfg = CPConfig(surface="lee", lr=0.05, hair=1e-6, escape=0.2, steps=60, every=60)
    snaps = list(run_critical_points(cfg, "cpu"))
    first, last = snaps[0].metrics, snaps[-1].metrics
    # A hair off the saddle: after 60 steps the loss is still at the saddle value 1 (the plateau) ...
    assert last["loss"] > 0.99 and last["grad_norm"] < 1e-2
    # ... while the escape step along the negative eigenvector has already left it.
    assert first["escape_loss"] < 1.0 and last["escape_loss"] < 0.2
    # Longer runs escape: the plateau ends.
    long = list(run_critical_points(CPConfig(surface="lee", steps=300, every=300), "cpu"))[-1].metrics
    assert long["loss"] < 1e-3

def test_mse_is_flat_where_cross_entropy_is_steep():
    s = two_logit_surfaces()
    mse = gradient_descent(s["mse"], (3.0, -3.0), 0.1, 60)
    ce = gradient_descent(s["cross-entropy"], (3.0, -3.0), 0.1, 60)
    assert ce["grad_norm"][0] > 20 * mse["grad_norm"][0]
    assert mse["loss"][-1] > 0.9 * mse["loss"][0]  # MSE has barely moved
    assert ce["loss"][-1] < 0.1 * ce["loss"][0]  # cross-entropy has left the corner
