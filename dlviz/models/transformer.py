"""A tiny Transformer (encoder-decoder or encoder-only) that exposes every attention map.

Pre-norm blocks (LayerNorm before each sublayer, as in GPT-2 / nanoGPT): they train faster and more stably
at this size than the post-norm blocks of the 2017 paper. Token ids ``0..vocab-1`` are symbols; ``vocab`` is
the beginning-of-sequence token the decoder starts from.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import MultiHeadAttention, positional_encoding


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, hidden: int):
        super().__init__(nn.Linear(d_model, hidden), nn.ReLU(), nn.Linear(hidden, d_model))


class EncoderBlock(nn.Module):
    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn, self.ffn = MultiHeadAttention(d_model, heads), FeedForward(d_model, 4 * d_model)

    def forward(self, x):
        """(B, S, d) -> (B, S, d), self-attention weights (B, h, S, S)."""
        h = self.norm1(x)
        a, w = self.attn(h, h, h)
        x = x + a
        return x + self.ffn(self.norm2(x)), w


class DecoderBlock(nn.Module):
    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.self_attn, self.cross_attn = MultiHeadAttention(d_model, heads), MultiHeadAttention(d_model, heads)
        self.ffn = FeedForward(d_model, 4 * d_model)

    def forward(self, y, memory, causal):
        """(B, T, d), encoder output (B, S, d) -> (B, T, d), self weights (B, h, T, T), cross (B, h, T, S)."""
        h = self.norm1(y)
        a, w_self = self.self_attn(h, h, h, attn_mask=causal)
        y = y + a
        a, w_cross = self.cross_attn(self.norm2(y), memory, memory)
        y = y + a
        return y + self.ffn(self.norm3(y)), w_self, w_cross


class TinyTransformer(nn.Module):
    """Encoder-decoder (``decoder=True``) or encoder-only Transformer over a small vocabulary.

    ``forward`` returns logits and, with ``return_attention``, a dict ``enc_self`` / ``dec_self`` / ``cross`` of
    (B, layers, heads, Q, K) weights (the decoder's are absent for an encoder-only model).
    """

    def __init__(self, vocab: int, max_len: int, d_model: int = 64, heads: int = 4, layers: int = 2,
                 decoder: bool = True, positional: bool = True):
        super().__init__()
        self.vocab, self.d_model, self.decoder, self.positional = vocab, d_model, decoder, positional
        self.embed = nn.Embedding(vocab + 1, d_model)  # + the BOS token
        # Entries of size d^-1/2, times sqrt(d) in _embed: tokens and positions enter at the same scale (about 1).
        # PyTorch's default N(0, 1) times sqrt(d) would drown the positions and blur every positional head.
        nn.init.normal_(self.embed.weight, std=d_model ** -0.5)
        self.register_buffer("pos", positional_encoding(max_len + 1, d_model), persistent=False)
        self.encoder = nn.ModuleList(EncoderBlock(d_model, heads) for _ in range(layers))
        self.enc_norm = nn.LayerNorm(d_model)
        if decoder:
            self.dec_blocks = nn.ModuleList(DecoderBlock(d_model, heads) for _ in range(layers))
        self.out_norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        # Vaswani et al. (3.4) multiply the embeddings by sqrt(d), bringing them to the scale of the +-1 code.
        x = self.embed(tokens) * math.sqrt(self.d_model)
        return x + self.pos[: tokens.shape[1]] if self.positional else x

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x, maps = self._embed(src), []
        for block in self.encoder:
            x, w = block(x)
            maps.append(w)
        return self.enc_norm(x), maps

    def decode(self, dec_in: torch.Tensor, memory: torch.Tensor):
        t = dec_in.shape[1]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=dec_in.device), diagonal=1)
        y, selfs, crosses = self._embed(dec_in), [], []
        for block in self.dec_blocks:
            y, ws, wc = block(y, memory, causal)
            selfs.append(ws)
            crosses.append(wc)
        return self.head(self.out_norm(y)), selfs, crosses

    def forward(self, src: torch.Tensor, dec_in: torch.Tensor | None = None, return_attention: bool = False):
        """src (B, S) ids; dec_in (B, T) ids starting with BOS (decoder only) -> logits (B, T or S, vocab)."""
        memory, enc_maps = self.encode(src)
        maps = {"enc_self": torch.stack(enc_maps, 1)}
        if self.decoder:
            logits, selfs, crosses = self.decode(dec_in, memory)
            maps.update(dec_self=torch.stack(selfs, 1), cross=torch.stack(crosses, 1))
        else:
            logits = self.head(self.out_norm(memory))
        return (logits, maps) if return_attention else logits

    @torch.no_grad()
    def generate(self, src: torch.Tensor, length: int) -> torch.Tensor:
        """Greedy decoding of ``length`` tokens (B, length); an encoder-only model predicts all at once."""
        if not self.decoder:
            return self(src).argmax(-1)
        memory, _ = self.encode(src)
        out = torch.full((src.shape[0], 1), self.vocab, dtype=torch.long, device=src.device)
        for _ in range(length):
            logits, _, _ = self.decode(out, memory)
            out = torch.cat([out, logits[:, -1:].argmax(-1)], dim=1)
        return out[:, 1:]
