"""Analytic 2-D loss surfaces and 1-D curves used in lectures, as differentiable torch functions.

Each :class:`Surface` is an elementwise ``f(x, y)`` on tensors of any (broadcastable) shapes, with a LaTeX
formula, a default view and its known minima. ``SURFACES`` is the registry the pages and the CLI read
(``--set surface=rosenbrock``); ``parse_formula`` (in :mod:`dlviz.analysis.formula`) builds a ``Surface``
from text a lecturer types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..i18n import N_

Fn2 = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Fn1 = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Surface:
    """A scalar function of two variables with a default view."""

    slug: str  # registry / CLI name, e.g. "rosenbrock"
    title: str  # human title (English, marked N_: shown with _())
    latex: str  # the formula, for st.latex
    fn: Fn2  # elementwise f(x, y) on tensors, differentiable
    bounds: tuple[float, float, float, float]  # xmin, xmax, ymin, ymax of the default view
    minima: tuple[tuple[float, float], ...] = ()  # known local/global minima; () if none (or not isolated)
    start: tuple[float, float] | None = None  # a suggested start point for descent demos
    note: str = ""  # one sentence: what the surface shows (English, marked N_: shown with _())

    def __call__(self, x, y):
        return self.fn(x, y)

    def grid(self, n: int = 100, bounds: tuple[float, float, float, float] | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``X, Y, Z`` of shape (n, n) on ``bounds`` (default: the view); rows follow y, columns x (plotly order)."""
        xmin, xmax, ymin, ymax = bounds or self.bounds
        xs = torch.linspace(xmin, xmax, n, dtype=torch.float64)
        ys = torch.linspace(ymin, ymax, n, dtype=torch.float64)
        Y, X = torch.meshgrid(ys, xs, indexing="ij")
        with torch.no_grad():
            Z = torch.broadcast_to(torch.as_tensor(self.fn(X, Y), dtype=torch.float64), X.shape)
        return X.numpy(), Y.numpy(), Z.numpy().copy()

    def value(self, x: float, y: float) -> float:
        """f at one point, as a float."""
        with torch.no_grad():
            return float(self.fn(torch.tensor(float(x), dtype=torch.float64), torch.tensor(float(y), dtype=torch.float64)))


@dataclass(frozen=True)
class Curve:
    """A scalar function of one variable (for 1-D pictures: an inflection point, local minima)."""

    slug: str
    title: str
    latex: str
    fn: Fn1  # elementwise f(x), differentiable
    bounds: tuple[float, float]  # xmin, xmax
    minima: tuple[float, ...] = ()
    note: str = ""

    def __call__(self, x):
        return self.fn(x)

    def grid(self, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
        xs = torch.linspace(self.bounds[0], self.bounds[1], n, dtype=torch.float64)
        with torch.no_grad():
            return xs.numpy(), self.fn(xs).numpy()


_R = 1 / math.sqrt(2)  # cos 45° = sin 45°


def _six_hump(x, y):
    return (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2


_SURFACE_LIST = [
    Surface("saddle", N_("Saddle x² − y²"), r"f(x, y) = x^2 - y^2", lambda x, y: x**2 - y**2,
            (-2.0, 2.0, -2.0, 2.0), (), (1.5, 0.02),
            N_("Curves up along x, down along y: the origin is a saddle; descent from near the x-axis stalls there.")),
    Surface("monkey-saddle", N_("Monkey saddle x³ − 3xy²"), r"f(x, y) = x^3 - 3 x y^2", lambda x, y: x**3 - 3 * x * y**2,
            (-1.5, 1.5, -1.5, 1.5), (), (1.0, 0.05),
            N_("Three valleys meet at the origin, where the Hessian is zero: a degenerate critical point.")),
    Surface("lee", "(1 − w₁w₂)²", r"f(w_1, w_2) = (1 - w_1 w_2)^2", lambda x, y: (1 - x * y) ** 2,
            (-2.0, 2.0, -2.0, 2.0),
            tuple((s * t, s / t) for s in (1.0, -1.0) for t in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)),
            (0.05, 0.03),
            N_("A two-layer linear net fitting 1: the origin is a saddle with Hessian [[0,-2],[-2,0]]; "
            "the minima form the hyperbola w1*w2 = 1 (minima lists samples of it).")),
    Surface("rosenbrock", N_("Rosenbrock"), r"f(x, y) = (1 - x)^2 + 100\,(y - x^2)^2",
            lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
            (-2.0, 2.0, -1.0, 3.0), ((1.0, 1.0),), (-1.5, 2.5),
            N_("A curved, narrow valley: easy to find, slow to follow to the minimum at (1, 1).")),
    Surface("himmelblau", N_("Himmelblau"), r"f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2",
            lambda x, y: (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2,
            (-5.0, 5.0, -5.0, 5.0),
            ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)), (0.0, 0.0),
            N_("Four equal minima, four saddles and one maximum: where descent ends depends on where it starts.")),
    Surface("six-hump-camel", N_("Six-hump camel"),
            r"f(x, y) = \left(4 - 2.1 x^2 + \tfrac{x^4}{3}\right) x^2 + x y + (4 y^2 - 4)\, y^2",
            _six_hump, (-2.0, 2.0, -1.1, 1.1),
            ((0.089842, -0.712656), (-0.089842, 0.712656), (1.703607, -0.796084), (-1.703607, 0.796084),
             (1.607105, 0.568651), (-1.607105, -0.568651)),
            (-1.0, -0.9),
            N_("Six minima (two global), with saddles between them: a small-scale picture of a rugged landscape.")),
    Surface("d2l-quadratic", N_("Ill-conditioned quadratic 0.1x² + 2y²"), r"f(x_1, x_2) = 0.1\,x_1^2 + 2\,x_2^2",
            lambda x, y: 0.1 * x**2 + 2 * y**2,
            (-5.5, 1.5, -2.5, 2.5), ((0.0, 0.0),), (-5.0, -2.0),
            N_("Curvatures differ 20-fold: a step size that is safe along x2 crawls along x1 (condition number 20).")),
    Surface("rotated-quadratic", N_("The same quadratic rotated by 45°"),
            r"f(x_1, x_2) = 0.1\,u^2 + 2\,v^2,\quad u = \tfrac{x_1 + x_2}{\sqrt2},\ v = \tfrac{x_2 - x_1}{\sqrt2}",
            lambda x, y: 0.1 * ((x + y) * _R) ** 2 + 2 * ((y - x) * _R) ** 2,
            (-6.0, 3.0, -6.0, 3.0), ((0.0, 0.0),), ((-5.0 + 2.0) * _R, (-5.0 - 2.0) * _R),
            N_("The d2l quadratic turned by 45°: the same curvatures (0.2 and 4), but the valley runs diagonally, so "
            "no coordinate follows it and per-coordinate step sizes (AdaGrad, RMSProp, Adam) no longer help.")),
]

SURFACES: dict[str, Surface] = {s.slug: s for s in _SURFACE_LIST}

CURVES: dict[str, Curve] = {
    "cubic": Curve("cubic", "x³", r"f(x) = x^3", lambda x: x**3, (-2.0, 2.0), (),
                   N_("f'(0) = 0 and f''(0) = 0, yet 0 is neither a minimum nor a maximum: a degenerate critical point.")),
    "x-cos-pi-x": Curve("x-cos-pi-x", "x·cos(πx)", r"f(x) = x \cos(\pi x)", lambda x: x * torch.cos(math.pi * x),
                        (-1.0, 2.0), (-0.273853, 1.090408),
                        N_("A local minimum near x = -0.27, a maximum at 0.27 and the lower minimum near x = 1.09.")),
}


def __getattr__(name: str):
    # Re-export the parser lazily (formula.py imports Surface from here).
    if name in ("parse_formula", "FormulaError"):
        from dlviz.analysis import formula

        return getattr(formula, name)
    raise AttributeError(name)


# -- MSE versus cross-entropy on a two-logit classifier ---------------------------------------------------
def _two_logit_data(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D inputs (two Gaussian classes at -1 and +1, sd 0.5) and labels in {0, 1}; fixed seed."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = (2.0 * y - 1.0) + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    return x.double(), y


def two_logit_surfaces(n: int = 64, seed: int = 0) -> dict[str, Surface]:
    """The loss of a two-layer net with one weight per layer (Glorot & Bengio 2010, Fig. 5) as a function of
    its two weights, under MSE and under cross-entropy: h = tanh(w1 x), logits z = (-w2 h, w2 h),
    p = softmax(z). Confidently wrong corners (w1 w2 << 0) are flat under MSE and steep under cross-entropy.
    """
    x, y = _two_logit_data(n, seed)
    sign = (2.0 * y - 1.0).double()  # +1 for class 1

    def margins(w1, w2):
        w1, w2 = torch.as_tensor(w1), torch.as_tensor(w2)
        h = torch.tanh(w1.unsqueeze(-1) * x)  # (..., n)
        return 2 * w2.unsqueeze(-1) * h * sign  # logit of the true class minus the other one

    def mse(w1, w2):
        # p_true = sigmoid(margin); squared error summed over the two one-hot outputs: 2 (1 - p_true)^2
        return (2 * (1 - torch.sigmoid(margins(w1, w2))) ** 2).mean(-1)

    def ce(w1, w2):
        return torch.nn.functional.softplus(-margins(w1, w2)).mean(-1)  # -log sigmoid(margin)

    bounds = (-4.0, 4.0, -4.0, 4.0)
    common = dict(bounds=bounds, minima=(), start=(3.0, -3.0))
    return {
        "mse": Surface("mse", N_("Mean squared error"), r"\frac{1}{N}\sum_i \lVert \mathrm{softmax}(z_i) - e_{y_i}\rVert^2",
                       mse, note=N_("Flat where the net is confidently wrong: the gradient vanishes."), **common),
        "cross-entropy": Surface("cross-entropy", N_("Cross-entropy"), r"-\frac{1}{N}\sum_i \log \mathrm{softmax}(z_i)_{y_i}",
                                 ce, note=N_("Grows linearly where the net is confidently wrong: a steady gradient."),
                                 **common),
    }
