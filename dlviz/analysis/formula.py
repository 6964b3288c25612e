"""A whitelist parser for formulas f(x, y) typed by a lecturer; never ``eval``.

Grammar (``^`` and ``**`` are powers, right-associative; ``-x^2`` is ``-(x^2)``; ``2x`` and ``3(x+y)``
multiply implicitly)::

    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/" | <implicit>) unary)*
    unary   := ("+" | "-") unary | power
    power   := primary (("^" | "**") unary)?
    primary := NUMBER | "x" | "y" | "pi" | "e" | FUNC "(" expr ")" | "(" expr ")"

Anything else raises :class:`FormulaError` whose ``position`` points at the offending token.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import torch

from dlviz.analysis.surfaces import Surface
from dlviz.i18n import N_, Msg

MAX_LENGTH = 200  # characters; longer input is refused before parsing
MAX_DEPTH = 40  # nesting of parentheses / unary operators

FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "exp": torch.exp, "log": torch.log,
    "tanh": torch.tanh, "sqrt": torch.sqrt, "abs": torch.abs,
}
VARIABLES = ("x", "y")
CONSTANTS = {"pi": math.pi, "e": math.e}

_LATEX_FN = {"sin": r"\sin", "cos": r"\cos", "tan": r"\tan", "exp": r"\exp", "log": r"\log", "tanh": r"\tanh"}


class FormulaError(ValueError):
    """A formula the parser refuses; ``position`` is the 0-based index of the offending character, ``reason`` a
    :class:`dlviz.i18n.Msg` (English as a str; shown translated with ``tr``)."""

    def __init__(self, message: str, position: int, text: str = ""):
        self.position = position
        self.reason = message
        pointer = ""
        if text:
            shown = text if len(text) <= 80 else text[:80] + "…"
            pointer = f"\n    {shown}\n    {' ' * min(position, 81)}^"
        super().__init__(f"{message} (at position {position + 1}){pointer}")


@dataclass(frozen=True)
class _Tok:
    kind: str  # "num", "name", "op", "end", or "bad" (a character outside the grammar)
    text: str
    pos: int


_TOKEN = re.compile(r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
                    r"|(?P<op>\*\*|[-+*/^()]))")


def _tokenize(text: str) -> list[_Tok]:
    toks, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        m = _TOKEN.match(text, i)
        if not m:
            # Reported when the parser reaches it, so an earlier bad name (``__import__``) is named first.
            toks.append(_Tok("bad", text[i], i))
            break
        kind, word, start = m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup)
        if kind == "name" and set(word) <= set(VARIABLES) and len(word) > 1:
            # "xy" or "xxy": a product of variables, as written on a blackboard.
            toks.extend(_Tok("name", ch, start + k) for k, ch in enumerate(word))
        else:
            toks.append(_Tok(kind, word, start))
        i = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


class _Parser:
    """Recursive descent over the tokens; builds a tuple tree: ("num", v) | ("var", name) | (op, a, b) |
    ("neg", a) | ("call", fn, a)."""

    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, message: Msg, tok: _Tok):
        if tok.kind == "bad":
            message = Msg(N_("unexpected character {char} (attribute access is not allowed); use numbers, x, y, "
                             "+ - * / ^, parentheses and {functions}") if tok.text == "." else
                          N_("unexpected character {char}; use numbers, x, y, + - * / ^, parentheses and {functions}"),
                          char=repr(tok.text), functions=", ".join(FUNCTIONS))
        raise FormulaError(message, tok.pos, self.text)

    def enter(self, tok: _Tok):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.error(Msg(N_("formula nested too deeply (more than {n} levels)"), n=MAX_DEPTH), tok)

    def parse(self):
        if self.peek().kind == "end":
            self.error(Msg(N_("the formula is empty: type something like x^2 - y^2")), self.peek())
        tree = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            self.error(Msg(N_("unmatched ')'")) if tok.text == ")" else
                       Msg(N_("unexpected {token}"), token=repr(tok.text)), tok)
        return tree

    def expr(self):
        left = self.term()
        while self.peek().text in ("+", "-") and self.peek().kind == "op":
            op = self.take().text
            left = ("add" if op == "+" else "sub", left, self.term())
        return left

    def term(self):
        left = self.unary()
        while True:
            tok = self.peek()
            if tok.kind == "op" and tok.text in ("*", "/"):
                self.take()
                left = ("mul" if tok.text == "*" else "div", left, self.unary())
            elif tok.kind in ("num", "name") or (tok.kind == "op" and tok.text == "("):
                left = ("mul", left, self.unary())  # implicit multiplication: 2x, 3(x + y), x y
            else:
                return left

    def unary(self):
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("+", "-"):
            self.take()
            self.enter(tok)
            operand = self.unary()
            self.depth -= 1
            return ("neg", operand) if tok.text == "-" else operand
        return self.power()

    def power(self):
        base = self.primary()
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("^", "**"):
            self.take()
            self.enter(tok)
            exponent = self.unary()
            self.depth -= 1
            return ("pow", base, exponent)
        return base

    def primary(self):
        tok = self.take()
        if tok.kind == "num":
            value = float(tok.text)
            if not math.isfinite(value):
                self.error(Msg(N_("number {number} is too large"), number=tok.text), tok)
            return ("num", value)
        if tok.kind == "name":
            name = tok.text
            if name in VARIABLES:
                return ("var", name)
            if name in CONSTANTS:
                return ("const", name)
            if name in FUNCTIONS:
                paren = self.peek()
                if not (paren.kind == "op" and paren.text == "("):
                    self.error(Msg(N_("{name} needs parentheses: {name}(x)"), name=name), paren)
                self.take()
                self.enter(paren)
                arg = self.expr()
                self.depth -= 1
                self.expect_close(paren)
                return ("call", name, arg)
            self.error(Msg(N_("unknown name {name}: allowed are x, y, pi, e and the functions {functions}"),
                           name=repr(name), functions=", ".join(FUNCTIONS)), tok)
        if tok.kind == "op" and tok.text == "(":
            self.enter(tok)
            inner = self.expr()
            self.depth -= 1
            self.expect_close(tok)
            return inner
        if tok.kind == "end":
            self.error(Msg(N_("the formula ends too early: an operand is missing")), tok)
        self.error(Msg(N_("unexpected {token}: an operand (number, x, y, function or '(') is expected here"),
                       token=repr(tok.text)), tok)

    def expect_close(self, opening: _Tok):
        tok = self.peek()
        if tok.kind == "op" and tok.text == ")":
            self.take()
            return
        if tok.kind == "end":
            self.error(Msg(N_("missing ')' for the '(' here")), opening)
        self.error(Msg(N_("expected ')' but found {token}"), token=repr(tok.text)), tok)


def _evaluate(tree, x: torch.Tensor, y: torch.Tensor):
    kind = tree[0]
    if kind == "num":
        return tree[1]
    if kind == "const":
        return CONSTANTS[tree[1]]
    if kind == "var":
        return x if tree[1] == "x" else y
    if kind == "neg":
        return -_evaluate(tree[1], x, y)
    if kind == "call":
        arg = _evaluate(tree[2], x, y)
        if not isinstance(arg, torch.Tensor):
            arg = torch.as_tensor(arg, dtype=x.dtype if x.is_floating_point() else torch.float64)
        return FUNCTIONS[tree[1]](arg)
    a, b = _evaluate(tree[1], x, y), _evaluate(tree[2], x, y)
    if kind == "add":
        return a + b
    if kind == "sub":
        return a - b
    if kind == "mul":
        return a * b
    if kind == "div":
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            return a / b if b != 0 else math.copysign(math.inf, a) if a else math.nan
        return a / b
    if kind == "pow":
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            # Constant powers are computed in torch too: no unbounded Python ints, no exceptions.
            return float(torch.pow(torch.tensor(float(a), dtype=torch.float64), float(b)))
        return a**b
    raise AssertionError(kind)


_PREC = {"add": 1, "sub": 1, "mul": 2, "div": 2, "neg": 3, "pow": 4, "call": 5, "num": 5, "var": 5, "const": 5}


def _fmt_num(v: float) -> str:
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:g}".replace("e", r"\times 10^{") + "}" if "e" in f"{v:g}" else f"{v:g}"


def to_latex(tree) -> str:
    """LaTeX for a parsed tree, with only the parentheses precedence needs."""
    kind = tree[0]

    def wrap(sub, min_prec):
        s = to_latex(sub)
        return rf"\left({s}\right)" if _PREC[sub[0]] < min_prec else s

    if kind == "num":
        return _fmt_num(tree[1])
    if kind == "const":
        return r"\pi" if tree[1] == "pi" else "e"
    if kind == "var":
        return tree[1]
    if kind == "neg":
        return "-" + wrap(tree[1], 3)
    if kind == "call":
        name, arg = tree[1], to_latex(tree[2])
        if name == "sqrt":
            return rf"\sqrt{{{arg}}}"
        if name == "abs":
            return rf"\left|{arg}\right|"
        return rf"{_LATEX_FN[name]}\left({arg}\right)"
    a, b = tree[1], tree[2]
    if kind == "add":
        return f"{to_latex(a)} + {wrap(b, 1)}"
    if kind == "sub":
        return f"{to_latex(a)} - {wrap(b, 2)}"
    if kind == "mul":
        left, right = wrap(a, 2), wrap(b, 3)
        sep = r" \cdot " if b[0] == "num" or right.startswith("-") else r"\,"
        return left + sep + right
    if kind == "div":
        return rf"\frac{{{to_latex(a)}}}{{{to_latex(b)}}}"
    if kind == "pow":
        return f"{{{wrap(a, 5)}}}^{{{to_latex(b)}}}"
    raise AssertionError(kind)


def parse_formula(text: str, bounds: tuple[float, float, float, float] = (-2, 2, -2, 2)) -> Surface:
    """Parse ``text`` (e.g. ``"x^2 - y^2 + 0.1 sin(3x)"``) into a :class:`Surface` on ``bounds``.

    Raises :class:`FormulaError` (a ``ValueError``) with ``position`` set, for anything outside the grammar.
    """
    if not isinstance(text, str):
        raise FormulaError(Msg(N_("the formula must be text")), 0)
    if len(text) > MAX_LENGTH:
        raise FormulaError(Msg(N_("the formula is too long ({n} characters; at most {max})"), n=len(text),
                               max=MAX_LENGTH), MAX_LENGTH, text)
    tree = _Parser(text).parse()

    def fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        out = _evaluate(tree, x, y)
        # Keep the graph and the broadcast shape even for formulas that ignore x or y (or both).
        return out + 0 * (x + y)

    xmin, xmax, ymin, ymax = (float(b) for b in bounds)
    return Surface(slug="custom", title=f"f(x, y) = {text.strip()}", latex="f(x, y) = " + to_latex(tree), fn=fn,
                   bounds=(xmin, xmax, ymin, ymax), minima=())
