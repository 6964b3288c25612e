"""A small Vision Transformer and the DINO projection head, named as in the official DINO ``vision_transformer.py``.

Parameter names follow the official layout (``cls_token``, ``pos_embed``, ``patch_embed.proj``,
``blocks.N.norm1 / attn.qkv / attn.proj / norm2 / mlp.fc1 / mlp.fc2``, ``norm``; the head's ``mlp.0/2/4`` and
``last_layer``), so an official checkpoint (ViT-S/16, ViT-S/8, ...) loads into the same class at full size.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, dim * 3, bias=qkv_bias), nn.Linear(dim, dim)

    def forward(self, x):
        """x (B, N, C) -> (output (B, N, C), attention (B, heads, N, N))."""
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, nh, N, hs)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C)), attn


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, num_heads, qkv_bias)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, return_attention: bool = False):
        y, attn = self.attn(self.norm1(x))
        if return_attention:
            return attn
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, gh*gw, C)


class VisionTransformer(nn.Module):
    """ViT with a CLS token; ``forward`` returns the normalized CLS output (B, embed_dim)."""

    def __init__(self, img_size: int = 32, patch_size: int = 4, in_chans: int = 1, embed_dim: int = 96,
                 depth: int = 4, num_heads: int = 3, mlp_ratio: float = 4.0, qkv_bias: bool = True):
        super().__init__()
        self.patch_size, self.embed_dim, self.num_heads, self.img_size = patch_size, embed_dim, num_heads, img_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        n_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, embed_dim))
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init_weights)

    def interpolate_pos_encoding(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Position embeddings for an h x w input (bicubic resize of the patch grid), as official DINO does."""
        n = x.shape[1] - 1
        N = self.pos_embed.shape[1] - 1
        gh, gw = h // self.patch_size, w // self.patch_size
        if n == N and gh == gw:
            return self.pos_embed
        side = int(math.sqrt(N))
        grid = self.pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)], dim=1)

    def prepare_tokens(self, x: torch.Tensor) -> torch.Tensor:
        B, _, h, w = x.shape
        t = torch.cat([self.cls_token.expand(B, -1, -1), self.patch_embed(x)], dim=1)
        return t + self.interpolate_pos_encoding(t, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.prepare_tokens(x)
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)[:, 0]

    def get_selfattention(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Attention of every layer: a list of ``depth`` tensors (B, heads, N, N), N = 1 + patches."""
        t, out = self.prepare_tokens(x), []
        for blk in self.blocks:
            out.append(blk(t, return_attention=True))
            t = blk(t)
        return out

    def get_last_selfattention(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's attention (B, heads, N, N), as in official DINO."""
        t = self.prepare_tokens(x)
        for blk in self.blocks[:-1]:
            t = blk(t)
        return self.blocks[-1](t, return_attention=True)


class DINOHead(nn.Module):
    """MLP (``nlayers``) to a bottleneck, L2-normalize, weight-normalized linear to ``out_dim`` (K) logits."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 256, bottleneck_dim: int = 64,
                 nlayers: int = 3, norm_last_layer: bool = False, use_bn: bool = False):
        super().__init__()
        # use_bn: official DINO's option; batch norm makes the hidden units vary across images.
        bn = (lambda: [nn.BatchNorm1d(hidden_dim)]) if use_bn else (lambda: [])
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), *bn(), nn.GELU()]
        for _ in range(nlayers - 2):
            layers += [nn.Linear(hidden_dim, hidden_dim), *bn(), nn.GELU()]
        layers.append(nn.Linear(hidden_dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        self.apply(_init_weights)
        import warnings

        with warnings.catch_warnings():  # torch deprecates weight_norm, but official checkpoints use its names
            warnings.simplefilter("ignore")
            self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    def forward(self, x):
        return self.last_layer(F.normalize(self.mlp(x), dim=-1, p=2))


class MultiCropWrapper(nn.Module):
    """backbone + head applied to a list of crops; crops of one resolution go through in one batch."""

    def __init__(self, backbone: VisionTransformer, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, crops: list[torch.Tensor]) -> torch.Tensor:
        out, i = [], 0
        while i < len(crops):
            j = i
            while j < len(crops) and crops[j].shape[-1] == crops[i].shape[-1]:
                j += 1
            out.append(self.backbone(torch.cat(crops[i:j])))
            i = j
        return self.head(torch.cat(out))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable or not a ViT state_dict; the message says what to do."""


def vit_from_state_dict(state: dict) -> VisionTransformer:
    """Build a ViT of the size a state_dict describes (official DINO format) and load it strictly.

    Accepts the raw backbone dict, or a training checkpoint with ``teacher``/``student`` entries whose keys
    carry ``module.`` / ``backbone.`` prefixes (the head is dropped).
    """
    if "teacher" in state and isinstance(state["teacher"], dict):
        state = state["teacher"]
    state = {re.sub(r"^(module\.)?(backbone\.)?", "", k): v for k, v in state.items()
             if not re.match(r"^(module\.)?head\.", k)}
    need = ("cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise CheckpointError(f"This file is not a ViT state_dict in the DINO format (missing {', '.join(missing)}).")
    w = state["patch_embed.proj.weight"]
    embed_dim, in_chans, patch = int(w.shape[0]), int(w.shape[1]), int(w.shape[-1])
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    side = int(round(math.sqrt(state["pos_embed"].shape[1] - 1)))
    mlp_ratio = state["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim
    heads = max(1, embed_dim // 64)  # official ViT-S/B: 64 dimensions per head
    model = VisionTransformer(side * patch, patch, in_chans, embed_dim, depth, heads, mlp_ratio,
                              qkv_bias="blocks.0.attn.qkv.bias" in state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"The checkpoint does not match a ViT of its own shapes: {str(exc)[:300]}") from None
    return model.eval()


def load_dino_checkpoint(path: str | Path) -> VisionTransformer:
    """Load an official DINO backbone (``torch.load(..., weights_only=True)`` only) into :class:`VisionTransformer`."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"No file at {p}. Download e.g. dino_deitsmall16_pretrain.pth from the DINO "
                              "repository and give its path.")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, a pickle with code in it, truncated...
        raise CheckpointError(f"Could not read {p.name} as a PyTorch state_dict ({type(exc).__name__}). "
                              "Give an official DINO .pth file.") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{p.name} holds a {type(state).__name__}, not a state_dict.")
    return vit_from_state_dict(state)
