"""Image-caption pairs made from the sklearn digits, for a tiny CLIP: the generator knows every attribute.

Each image is one digit drawn on a black ``CANVAS`` x ``CANVAS`` RGB canvas with a colour, a size and a position;
each caption says some of those attributes in one of several English templates ("a small red seven in the top
left", "the digit 7, drawn in blue"). What the tests of "zero-shot" rely on is held out of training:

* templates: the zero-shot prompts ("a photo of the number {word}", ...), the bare label word and the descriptive
  templates of the retrieval test never occur as a training caption, whichever attributes a partial training
  caption drops (every word of them does, in other sentences);
* attribute combinations: some (digit, colour) pairs never occur in training ("a green seven"); the test images
  draw from all of them, so a test can ask about combinations the model never saw;
* images: training renders come from the digits' training split, test renders from their test split.

Captions are tokenized by a word-level tokenizer over a small fixed vocabulary (``PAD`` and ``UNK`` first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .digits import load_digits_split

CANVAS = 24  # side of the RGB canvas in pixels
MAX_LEN = 12  # tokens per caption (longer text is cut: the page says so)
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COLOURS = {"red": (1.0, 0.1, 0.1), "green": (0.1, 0.85, 0.2), "blue": (0.25, 0.45, 1.0), "yellow": (1.0, 0.9, 0.1),
           "white": (1.0, 1.0, 1.0)}
COLOUR_NAMES = tuple(COLOURS)
SIZES = {"small": 12, "large": 16}  # digit side in pixels (8 x 8 sources: at 10 px strokes blur together)
SIZE_NAMES = tuple(SIZES)
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "centre")
# (digit, colour) pairs no training image has: 5 of the 50 (few, so that a colour says little about the digit).
HELD_OUT_COMBOS = frozenset({(7, "green"), (2, "red"), (4, "yellow"), (9, "blue"), (0, "white")})

# Training captions, as real captions are: partial. A bracketed group is said only when its attribute is chosen
# (each with probability P_ATTRIBUTE); slots outside brackets are always said. Most captions name the digit
# (P_DIGIT); the rest describe only colour, size or position. Naming few attributes matters: with every
# attribute in every caption, the 5 x 2 x 5 = 50 colour/size/position combinations already single out an image
# among 128 but for 2 or 3 look-alikes, so the batch contrast barely needs the digit.
TRAIN_TEMPLATES = (
    "a[ {size}][ {colour}] {word}[ in the {position}]",
    "the digit {num}[, drawn in {colour}][, {size}][, in the {position}]",
    "a photo of a[ {size}][ {colour}] {word}[ in the {position}]",
    "a[ {colour}] {word} on a black background",
    "the number {num}[ in the {position}]",
    "an image of a[ {size}][ {colour}] {word}",
    "{colour} {word}[, {size}][, {position}]",
    "there is a[ {colour}] {word} in the {position}",
    "a[ {size}] {num}[ written in {colour}]",
)
NO_DIGIT_TEMPLATES = (  # captions that never name the digit (at least one other attribute is said)
    "a[ {size}][ {colour}] digit[ in the {position}]",
    "a drawing of a[ {size}][ {colour}] digit[ in the {position}]",
)
P_DIGIT = 0.9  # probability that a training caption names the digit
P_ATTRIBUTE = 0.3  # probability that an optional colour / size / position group is said
CAPTIONS_PER_IMAGE = 8  # captions drawn per training image (a step picks one of them)
# Zero-shot class prompts, never seen in training; the first is the paper's style of prompt.
PROMPT_TEMPLATES = (
    "a photo of the number {word}",
    "an image of the digit {word}",
    "a drawing of a {word}",
    "there is a {word}",
    "the number {word} on a black background",
)
BARE_TEMPLATE = "{word}"  # the bare label word: a caption unlike any training sentence
# Descriptive held-out templates with every attribute: the captions of the retrieval test.
RETRIEVAL_TEMPLATES = (
    "a {size} {word} in the {position}, drawn in {colour}",
    "{colour} {num} in the {position}, {size}",
)
PAD, UNK = "<pad>", "<unk>"


def _words(text: str) -> list[str]:
    """Lower-case words and numerals; punctuation dropped."""
    return re.findall(r"[a-z0-9]+", text.lower())


def caption(template: str, digit: int, colour: str, size: str, position: str) -> str:
    """``template`` filled with one image's attributes."""
    return template.format(word=WORDS[digit], num=str(digit), colour=colour, size=size, position=position)


_GROUP = re.compile(r"\[([^\]]*)\]")
_SLOT = re.compile(r"\{(\w+)\}")
_ATTRIBUTE_OF = {"word": "digit", "num": "digit", "colour": "colour", "size": "size", "position": "position"}


def template_variants(template: str) -> list[str]:
    """Every plain template a bracketed one can produce (each group kept or dropped)."""
    groups = _GROUP.findall(template)
    out = []
    for mask in range(2 ** len(groups)):
        keep = iter([(mask >> i) & 1 for i in range(len(groups))])
        out.append(_GROUP.sub(lambda m: m.group(1) if next(keep) else "", template))
    return out


def _partial(template: str, keep: list[bool]) -> str:
    """``template`` with its i-th bracketed group kept iff ``keep[i]``."""
    it = iter(keep)
    return _GROUP.sub(lambda m: m.group(1) if next(it) else "", template)


def _vocabulary() -> tuple[str, ...]:
    words: set[str] = set(WORDS) | {str(d) for d in range(10)} | set(COLOUR_NAMES) | set(SIZE_NAMES)
    for p in POSITIONS:
        words |= set(_words(p))
    for t in TRAIN_TEMPLATES + NO_DIGIT_TEMPLATES + PROMPT_TEMPLATES + RETRIEVAL_TEMPLATES:
        words |= set(_words(re.sub(r"\{\w+\}", " ", _GROUP.sub(r"\1", t))))
    return (PAD, UNK) + tuple(sorted(words))


VOCAB = _vocabulary()
TOKEN_ID = {w: i for i, w in enumerate(VOCAB)}


@dataclass(frozen=True)
class Tokens:
    """A tokenized text: ``ids`` (MAX_LEN,) int64 padded with 0; the words not in the vocabulary; cut words."""

    ids: torch.Tensor
    unknown: tuple[str, ...]
    truncated: int  # words beyond MAX_LEN that were dropped


def tokenize(text: str) -> Tokens:
    """Word-level tokens of ``text``: unknown words become ``<unk>`` (never an error), empty text is all padding."""
    words = _words(str(text))
    ids = [TOKEN_ID.get(w, TOKEN_ID[UNK]) for w in words[:MAX_LEN]]
    unknown = tuple(dict.fromkeys(w for w in words if w not in TOKEN_ID))
    out = torch.zeros(MAX_LEN, dtype=torch.int64)
    out[:len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return Tokens(out, unknown, max(0, len(words) - MAX_LEN))


def _ids(text: str) -> list[int]:
    ids = [TOKEN_ID.get(w, 1) for w in _words(text)[:MAX_LEN]]  # 1: <unk>
    return ids + [0] * (MAX_LEN - len(ids))


def tokenize_all(texts: list[str]) -> torch.Tensor:
    """(N, MAX_LEN) token ids of ``texts`` (one tensor built at once: 43,000 captions in a fraction of a second)."""
    return torch.tensor([_ids(t) for t in texts], dtype=torch.int64).reshape(len(texts), MAX_LEN)


def prompts(template: str) -> list[str]:
    """The ten class prompts of a zero-shot template (digit 0 first)."""
    return [template.format(word=w) for w in WORDS]


@dataclass(frozen=True)
class CaptionData:
    """Rendered pairs. Images (N, 3, CANVAS, CANVAS) float in [0, 1]; attributes as int64 index arrays.

    ``train_tokens`` (N_train, CAPTIONS_PER_IMAGE, MAX_LEN): partial captions of every training image (a step
    picks one per image). ``test_captions`` / ``test_tokens``: one held-out descriptive caption
    per test image (the retrieval queries).
    """

    x_train: torch.Tensor
    digit_train: torch.Tensor
    colour_train: torch.Tensor
    size_train: torch.Tensor
    position_train: torch.Tensor
    train_tokens: torch.Tensor
    x_test: torch.Tensor
    digit_test: torch.Tensor
    colour_test: torch.Tensor
    size_test: torch.Tensor
    position_test: torch.Tensor
    test_captions: tuple[str, ...]
    test_tokens: torch.Tensor

    def attributes(self, i: int, split: str = "test") -> tuple[int, str, str, str]:
        """(digit, colour, size, position) of image ``i`` of a split."""
        d, c, s, p = (getattr(self, f"{a}_{split}")[i] for a in ("digit", "colour", "size", "position"))
        return int(d), COLOUR_NAMES[int(c)], SIZE_NAMES[int(s)], POSITIONS[int(p)]

    @property
    def unseen_combo_test(self) -> torch.Tensor:
        """(N_test,) bool: the test image's (digit, colour) pair never occurs in training."""
        return torch.tensor([(int(d), COLOUR_NAMES[int(c)]) in HELD_OUT_COMBOS
                             for d, c in zip(self.digit_test, self.colour_test)])


def _render(glyphs: dict[int, torch.Tensor], index: torch.Tensor, digit: torch.Tensor, colour: torch.Tensor,
            size: torch.Tensor, position: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(N, 3, CANVAS, CANVAS): glyph ``index[i]`` at its size, colour and position (1 px of random jitter)."""
    n = len(index)
    out = torch.zeros(n, 3, CANVAS, CANVAS)
    rgb = torch.tensor([COLOURS[c] for c in COLOUR_NAMES])
    jitter = torch.randint(-1, 2, (n, 2), generator=g)
    for i in range(n):
        side = SIZES[SIZE_NAMES[int(size[i])]]
        glyph = glyphs[side][int(index[i]), 0]
        pos = POSITIONS[int(position[i])]
        far = CANVAS - side - 1
        top = 1 if "top" in pos else far if "bottom" in pos else (CANVAS - side) // 2
        left = 1 if "left" in pos else far if "right" in pos else (CANVAS - side) // 2
        top = int(min(max(top + int(jitter[i, 0]), 0), CANVAS - side))
        left = int(min(max(left + int(jitter[i, 1]), 0), CANVAS - side))
        out[i, :, top:top + side, left:left + side] = rgb[int(colour[i])][:, None, None] * glyph
    return out


def _train_captions(rows: list[tuple[int, str, str, str]], per_image: int, p_digit: float, p_attribute: float,
                    g: torch.Generator) -> list[str]:
    """``per_image`` partial captions of each image (attributes ``rows``), drawn with ``g``: a caption names the
    digit with probability ``p_digit`` and each optional attribute group with probability ``p_attribute``; a
    caption without the digit says at least one other attribute."""
    n = len(rows)
    named = torch.rand(n, per_image, generator=g) < p_digit
    pick = torch.rand(n, per_image, generator=g)
    keep = torch.rand(n, per_image, 4, generator=g) < p_attribute
    forced = torch.randint(0, 3, (n, per_image), generator=g)  # the group a digit-free caption keeps
    out = []
    for i, attrs in enumerate(rows):
        for j in range(per_image):
            pool = TRAIN_TEMPLATES if named[i, j] else NO_DIGIT_TEMPLATES
            t = pool[int(pick[i, j] * len(pool))]
            k = keep[i, j].tolist()[:len(_GROUP.findall(t))]
            if not named[i, j] and not any(k):
                k[int(forced[i, j]) % len(k)] = True
            out.append(caption(_partial(t, k), *attrs))
    return out


def _attributes(digits: torch.Tensor, train: bool, g: torch.Generator):
    """Random colour, size and position per image; training images avoid the held-out (digit, colour) pairs."""
    n = len(digits)
    colour = torch.randint(0, len(COLOUR_NAMES), (n,), generator=g)
    if train:
        for i in range(n):  # resample the held-out pairs: a uniform choice among the digit's other colours
            while (int(digits[i]), COLOUR_NAMES[int(colour[i])]) in HELD_OUT_COMBOS:
                colour[i] = int(torch.randint(0, len(COLOUR_NAMES), (1,), generator=g))
    size = torch.randint(0, len(SIZE_NAMES), (n,), generator=g)
    position = torch.randint(0, len(POSITIONS), (n,), generator=g)
    return colour, size, position


@lru_cache(maxsize=4)
def load_caption_data(seed: int, train_renders: int = 3, test_renders: int = 2, p_digit: float = P_DIGIT,
                      p_attribute: float = P_ATTRIBUTE, per_image: int = CAPTIONS_PER_IMAGE) -> CaptionData:
    """The pairs of a run: ``train_renders`` renders of each of the 1,437 training digits, each with
    ``per_image`` partial captions, and ``test_renders`` renders of each of the 360 test digits, drawn with a
    generator seeded by ``seed``. Cached (read-only: do not modify)."""
    g = torch.Generator().manual_seed(int(seed) + 7919)  # its own stream: the run's generator orders batches
    glyphs = {side: load_digits_split(side) for side in SIZES.values()}
    split = load_digits_split(8)

    def build(y: torch.Tensor, renders: int, train: bool):
        index = torch.arange(len(y)).repeat(renders)
        digit = y.repeat(renders)
        colour, size, position = _attributes(digit, train, g)
        key = "x_train" if train else "x_test"
        local = {side: getattr(gl, key) for side, gl in glyphs.items()}
        x = _render(local, index, digit, colour, size, position, g)
        return x, digit, colour, size, position

    xtr, dtr, ctr, str_, ptr = build(split.y_train, train_renders, True)
    xte, dte, cte, ste, pte = build(split.y_test, test_renders, False)
    attrs = lambda d, c, s, p: (int(d), COLOUR_NAMES[int(c)], SIZE_NAMES[int(s)], POSITIONS[int(p)])  # noqa: E731
    rows = [attrs(*a) for a in zip(dtr.tolist(), ctr.tolist(), str_.tolist(), ptr.tolist())]
    train_tokens = tokenize_all(_train_captions(rows, per_image, p_digit, p_attribute, g)).reshape(
        len(rows), per_image, MAX_LEN)
    pick = torch.randint(0, len(RETRIEVAL_TEMPLATES), (len(dte),), generator=g)
    test_captions = tuple(caption(RETRIEVAL_TEMPLATES[int(k)], *attrs(*a))
                          for k, a in zip(pick, zip(dte, cte, ste, pte)))
    return CaptionData(xtr, dtr, ctr, str_, ptr, train_tokens, xte, dte, cte, ste, pte, test_captions,
                       tokenize_all(list(test_captions)))


def decode(ids: torch.Tensor) -> str:
    """The words of a token row, padding dropped."""
    return " ".join(VOCAB[int(i)] for i in ids if int(i) != TOKEN_ID[PAD])


__all__ = ["CANVAS", "MAX_LEN", "WORDS", "COLOUR_NAMES", "SIZE_NAMES", "POSITIONS", "HELD_OUT_COMBOS",
           "TRAIN_TEMPLATES", "PROMPT_TEMPLATES", "BARE_TEMPLATE", "RETRIEVAL_TEMPLATES", "VOCAB", "Tokens",
           "tokenize", "tokenize_all", "prompts", "caption", "CaptionData", "load_caption_data", "decode"]
