"""The formula parser: a whitelist grammar (never eval) with errors that point at the offending token."""

import math

import numpy as np
import pytest
import torch

from dlviz.analysis.formula import MAX_LENGTH, FormulaError, parse_formula


def _f(text, x, y):
    return float(parse_formula(text)(torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)))


@pytest.mark.parametrize("text, expected", [
    ("x^2 - y^2", lambda x, y: x**2 - y**2),
    ("-x^2", lambda x, y: -(x**2)),  # unary minus binds looser than ^
    ("2^3^2", lambda x, y: 2.0 ** 9),  # right-associative
    ("x**2 + 3y", lambda x, y: x**2 + 3 * y),
    ("2xy - 3(x + y)/4", lambda x, y: 2 * x * y - 3 * (x + y) / 4),
    ("sin(x) + cos(y) * exp(-x^2) - log(1 + y^2)", lambda x, y: math.sin(x) + math.cos(y) * math.exp(-x**2)
     - math.log(1 + y**2)),
    ("tanh(x) + sqrt(abs(x y)) + pi - e", lambda x, y: math.tanh(x) + math.sqrt(abs(x * y)) + math.pi - math.e),
    ("1.5e-1 * x + .5", lambda x, y: 0.15 * x + 0.5),
    ("x^-1", lambda x, y: 1 / x),
])
def test_values_match_python(text, expected):
    for x, y in [(0.7, -1.3), (1.9, 0.4)]:
        assert _f(text, x, y) == pytest.approx(expected(x, y), rel=1e-12)


def test_parsed_surface_is_differentiable_and_broadcasts():
    s = parse_formula("x^2 * y + 3")
    X = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    Y = torch.tensor([3.0, -1.0], dtype=torch.float64, requires_grad=True)
    gx, gy = torch.autograd.grad(s(X, Y).sum(), (X, Y))
    assert torch.allclose(gx, 2 * X.detach() * Y.detach()) and torch.allclose(gy, X.detach() ** 2)
    const = parse_formula("5")
    X, Y, Z = const.grid(7)
    assert Z.shape == (7, 7) and np.all(Z == 5)
    assert "frac" in parse_formula("x / (1 + y^2)").latex


@pytest.mark.parametrize("text, position, words", [
    ("__import__('os')", 0, "unknown name '__import__'"),
    ("x.real", 1, "attribute access"),
    ("(x).__class__", 3, "attribute access"),
    ("lambda x: x", 0, "unknown name 'lambda'"),
    ("x + os.system(1)", 4, "unknown name 'os'"),
    ("x; y", 1, "unexpected character ';'"),
    ("[x]", 0, "unexpected character '['"),
    ("sin x", 4, "needs parentheses"),
    ("foo(x)", 0, "unknown name 'foo'"),
    ("(x + 1", 0, "missing ')'"),
    ("x + 1)", 5, "unmatched ')'"),
    ("x +", 3, "ends too early"),
    ("", 0, "empty"),
])
def test_rejects_with_position(text, position, words):
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    assert info.value.position == position
    assert words in str(info.value)


def test_rejects_overlong_and_deep_input():
    with pytest.raises(FormulaError, match="too long"):
        parse_formula("x+" * MAX_LENGTH + "x")
    with pytest.raises(FormulaError, match="nested too deeply"):
        parse_formula("(" * 60 + "x" + ")" * 60)
    with pytest.raises(FormulaError, match="too large"):
        parse_formula("1e999 * x")
