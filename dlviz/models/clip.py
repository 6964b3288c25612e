"""A tiny CLIP: a conv image encoder, a small Transformer text encoder, and the symmetric contrastive loss.

The structure follows the pseudocode of Radford et al. (2021), Figure 3::

    I_f = image_encoder(I)                  # (n, d_i)
    T_f = text_encoder(T)                   # (n, d_t)
    I_e = l2_normalize(I_f @ W_i)           # (n, d_e)
    T_e = l2_normalize(T_f @ W_t)           # (n, d_e)
    logits = I_e @ T_e.T * exp(t)           # (n, n)
    loss = (cross_entropy(logits, arange(n), axis=0) + cross_entropy(logits, arange(n), axis=1)) / 2
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_LOGIT_SCALE = 100.0  # the paper clips the learned scale exp(t) at 100
INIT_TEMPERATURE = 0.07  # the paper's initial temperature: exp(t) = 1/0.07


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """The symmetric cross-entropy over the batch's (n, n) similarity matrix.

    ``image_emb`` and ``text_emb`` (n, d) are L2-normalized; pair i is (image i, text i). The image->text term
    reads each row of ``logits`` as a softmax over the n texts; the text->image term each column over the images.
    """
    logits = logit_scale * image_emb @ text_emb.t()  # (n, n)
    labels = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


class ImageEncoder(nn.Module):
    """(n, 3, 24, 24) -> features (n, hidden): three 3x3 conv + BatchNorm + max-pool stages, then one linear
    layer over two summaries of the last feature map: its global max (what is there, wherever it is) and the map
    itself flattened (where it is: captions talk about positions). The first layer sees the brightness
    max(R, G, B) beside the colour channels, so a shape learned in one colour is recognised in another (without
    it a green seven, never in training, was read as another digit: about 15% right against 85% overall)."""

    def __init__(self, width: int = 16, hidden: int = 128, canvas: int = 24):
        super().__init__()
        w = width
        self.conv = nn.Sequential(
            nn.Conv2d(4, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = canvas // 8
        self.fc = nn.Sequential(nn.Linear(4 * w * (side * side + 1), hidden), nn.ReLU())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) -> (n, 4w * (side² + 1)): the last feature map's global max and the map itself."""
        f = self.conv(torch.cat([x, x.amax(1, keepdim=True)], 1))  # (n, 4w, side, side)
        return torch.cat([f.amax((2, 3)), f.flatten(1)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class _Block(nn.Module):
    """Pre-norm Transformer block: masked multi-head self-attention, then an MLP; both residual."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        n, L, dim = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(n, L, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(dim // self.heads)  # (n, heads, L, L)
        att = att.masked_fill(~keep[:, None, None, :], float("-inf")).softmax(-1)  # padding is never attended
        x = x + self.out((att @ v).transpose(1, 2).reshape(n, L, dim))
        return x + self.mlp(self.ln2(x))


class TextEncoder(nn.Module):
    """(n, L) token ids (0 = padding) -> features (n, dim): token + position embeddings, ``layers`` Transformer
    blocks, a final LayerNorm, then the mean over the caption's real tokens."""

    def __init__(self, vocab: int, max_len: int, dim: int = 64, layers: int = 1, heads: int = 4):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(0.02 * torch.randn(max_len, dim))
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keep = ids != 0
        keep[:, 0] = True  # an empty text still attends to one position: finite, never NaN
        x = self.tok(ids) + self.pos[: ids.shape[1]]
        for block in self.blocks:
            x = block(x, keep)
        x = self.ln(x)
        w = keep.unsqueeze(-1).to(x.dtype)
        return (x * w).sum(1) / w.sum(1)


class TinyCLIP(nn.Module):
    """Both encoders, the linear projections W_i and W_t to the shared d-dim space, and the logit scale exp(t)."""

    def __init__(self, vocab: int, max_len: int, embed_dim: int = 64, width: int = 16, text_dim: int = 64,
                 layers: int = 1, temperature: float = INIT_TEMPERATURE, learn_temperature: bool = True,
                 image_hidden: int = 128):
        super().__init__()
        self.image_encoder = ImageEncoder(width, image_hidden)
        self.text_encoder = TextEncoder(vocab, max_len, text_dim, layers)
        self.w_i = nn.Linear(image_hidden, embed_dim, bias=False)
        self.w_t = nn.Linear(text_dim, embed_dim, bias=False)
        # t = log(1/temperature); a fixed temperature is the same tensor without a gradient.
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)), requires_grad=learn_temperature)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def clamp_scale(self) -> None:
        """After each step: exp(t) <= 100, as in the paper (and open_clip's ``clamp_(0, log(100))``)."""
        with torch.no_grad():
            self.log_scale.clamp_(0.0, math.log(MAX_LOGIT_SCALE))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) -> (n, d) unit vectors."""
        return F.normalize(self.w_i(self.image_encoder(x)), dim=-1)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """(n, L) token ids -> (n, d) unit vectors."""
        return F.normalize(self.w_t(self.text_encoder(ids)), dim=-1)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The symmetric CLIP loss of a batch of n pairs."""
        return clip_loss(self.encode_image(x), self.encode_text(ids), self.logit_scale)


class TextTower(nn.Module):
    """The text half of a TinyCLIP (encoder + W_t), for a frozen CPU copy the page can run on typed captions."""

    def __init__(self, vocab: int, max_len: int, embed_dim: int, text_dim: int, layers: int):
        super().__init__()
        self.text_encoder = TextEncoder(vocab, max_len, text_dim, layers)
        self.w_t = nn.Linear(text_dim, embed_dim, bias=False)

    @torch.no_grad()
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.w_t(self.text_encoder(ids)), dim=-1)


def text_state(model: TinyCLIP) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the text tower's weights (about 60,000 numbers): what a snapshot carries."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            if k.startswith(("text_encoder.", "w_t."))}


def load_text_tower(state: dict[str, torch.Tensor], embed_dim: int, text_dim: int, layers: int,
                    vocab: int, max_len: int) -> TextTower:
    tower = TextTower(vocab, max_len, embed_dim, text_dim, layers)
    tower.load_state_dict(state)
    return tower.eval()


__all__ = ["clip_loss", "ImageEncoder", "TextEncoder", "TinyCLIP", "TextTower", "text_state", "load_text_tower",
           "MAX_LOGIT_SCALE", "INIT_TEMPERATURE"]
