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

from ..i18n import N_, Msg


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
    """ViT with a CLS token; ``forward`` returns the normalized CLS output (B, embed_dim).

    ``registers`` > 0 adds that many learned tokens without a position (Darcet et al. 2024, "Vision Transformers
    Need Registers"), placed between the CLS token and the patches: the tokens are [CLS, registers, patches],
    so the CLS-to-patch attention is always the last ``grid`` columns. Official DINO has none.
    """

    def __init__(self, img_size: int = 32, patch_size: int = 4, in_chans: int = 1, embed_dim: int = 96,
                 depth: int = 4, num_heads: int = 3, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 registers: int = 0):
        super().__init__()
        self.patch_size, self.embed_dim, self.num_heads, self.img_size = patch_size, embed_dim, num_heads, img_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        n_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, embed_dim))
        self.reg_tokens = nn.Parameter(torch.zeros(1, registers, embed_dim)) if registers else None
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if registers:
            nn.init.trunc_normal_(self.reg_tokens, std=0.02)
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
        t = t + self.interpolate_pos_encoding(t, h, w)
        if self.reg_tokens is None:
            return t
        return torch.cat([t[:, :1], self.reg_tokens.expand(B, -1, -1), t[:, 1:]], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.prepare_tokens(x)
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)[:, 0]

    def get_selfattention(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Attention of every layer: a list of ``depth`` tensors (B, heads, N, N), N = 1 + registers + patches."""
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
    """A checkpoint file that is missing, unreadable or not a ViT state_dict; the message says what to do (a
    :class:`dlviz.i18n.Msg`: English, shown translated with ``tr(exc.args[0])``)."""


WEIGHTS_ENV = "DLVIZ_WEIGHTS"  # the one folder pretrained checkpoints are read from
CHECKPOINT_SUFFIXES = (".pth", ".pt")
# Bounds on what a checkpoint may declare, checked on the shapes before any model is built (a crafted file of a
# few KB can declare any shape: an expanded tensor is saved as one number). Official DINO ViT-S/16, ViT-S/8,
# ViT-B/16 and ViT-B/8 (width 384 or 768, depth 12, patch 8 or 16, 224 px, MLP ratio 4) are well inside.
MAX_WIDTH = 1024
MAX_DEPTH = 24
MAX_HEADS = 16
MAX_PATCH = 32
MAX_IMG_SIZE = 1024  # side of the square the position embeddings were trained for
MAX_GRID = 64  # patches per side of that square (official: 14 or 28)
MAX_MLP_RATIO = 8
MAX_PARAMS = 400_000_000  # about 1.6 GB of float32


def weights_dir() -> Path:
    """The folder of pretrained checkpoints: $DLVIZ_WEIGHTS, else ``<data dir>/weights`` (``./data/weights``).

    The data dir is the one the server started with: the sidebar's data folder (typed by any visitor) does not
    move it.
    """
    import os

    from ..data.digits import server_data_dir

    return Path(os.environ.get(WEIGHTS_ENV) or server_data_dir() / "weights").expanduser()


def list_checkpoints(folder: str | Path | None = None) -> list[Path]:
    """The ``*.pth`` / ``*.pt`` files directly in ``folder`` (default :func:`weights_dir`), sorted by name.

    A missing or unreadable folder lists nothing.
    """
    root = Path(folder) if folder is not None else weights_dir()
    try:
        return sorted((p for p in root.iterdir() if p.suffix.lower() in CHECKPOINT_SUFFIXES and p.is_file()),
                      key=lambda p: p.name.lower())
    except OSError:
        return []


def _shape(state: dict, key: str, ndim: int) -> tuple[int, ...]:
    shape = tuple(int(d) for d in state[key].shape)
    if len(shape) != ndim:
        raise CheckpointError(Msg(N_("{key} has shape {shape}; a ViT in the DINO format has {ndim} dimensions there."),
                                  key=key, shape=list(shape), ndim=ndim))
    return shape


def declared_vit_size(state: dict) -> dict:
    """The ViT size a state_dict declares, from its shapes alone; refuses sizes outside the bounds above."""
    embed_dim, in_chans, ph, pw = _shape(state, "patch_embed.proj.weight", 4)
    if ph != pw:
        raise CheckpointError(Msg(N_("The patches are not square ({ph} x {pw}): not a ViT in the DINO format."),
                                  ph=ph, pw=pw))
    if not (1 <= embed_dim <= MAX_WIDTH and 1 <= ph <= MAX_PATCH and in_chans in (1, 3)):
        raise CheckpointError(Msg(N_("The checkpoint declares width {width}, patch {patch} and {channels} input "
                                     "channels; supported: width up to {max_width}, patch up to {max_patch}, 1 or 3 "
                                     "channels (official DINO ViT-S and ViT-B)."),
                                  width=embed_dim, patch=ph, channels=in_chans, max_width=MAX_WIDTH,
                                  max_patch=MAX_PATCH))
    if _shape(state, "cls_token", 3) != (1, 1, embed_dim):
        raise CheckpointError(Msg(N_("cls_token does not match the width {width}."), width=embed_dim))
    one, tokens, dim = _shape(state, "pos_embed", 3)
    side = int(round(math.sqrt(max(tokens - 1, 0))))
    if one != 1 or dim != embed_dim or tokens < 2 or side * side != tokens - 1 or side > MAX_GRID \
            or side * ph > MAX_IMG_SIZE:
        raise CheckpointError(Msg(N_("pos_embed has shape {shape}: expected (1, 1 + n x n, {width}) for a square "
                                     "grid of at most {grid} x {grid} patches and {pixels} pixels."),
                                  shape=[one, tokens, dim], width=embed_dim, grid=MAX_GRID, pixels=MAX_IMG_SIZE))
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d{1,6})\.", k))}
    if any(re.match(r"blocks\.\d{7,}\.", k) for k in state) or max(blocks, default=-1) >= MAX_DEPTH:
        raise CheckpointError(Msg(N_("The checkpoint declares more than {depth} blocks; supported: up to {depth} "
                                     "(official DINO ViTs have 12)."), depth=MAX_DEPTH))
    depth = len(blocks)
    if depth == 0 or blocks != set(range(depth)):
        raise CheckpointError(Msg(N_("The transformer blocks are missing or not numbered 0, 1, 2, ...: not a ViT "
                                     "in the DINO format.")))
    if "blocks.0.mlp.fc1.weight" not in state:
        raise CheckpointError(Msg(N_("This file is not a ViT state_dict in the DINO format (missing {keys})."),
                                  keys="blocks.0.mlp.fc1.weight"))
    hidden = _shape(state, "blocks.0.mlp.fc1.weight", 2)[0]
    if not (1 <= hidden <= MAX_MLP_RATIO * embed_dim):
        raise CheckpointError(Msg(N_("The MLP width {hidden} is more than {ratio}x the width {width}."),
                                  hidden=hidden, ratio=MAX_MLP_RATIO, width=embed_dim))
    # Official ViT-S/B: 64 dimensions per head. Checkpoints do not store the head count; other widths get 1 head.
    heads = embed_dim // 64 if embed_dim % 64 == 0 else 1
    if heads > MAX_HEADS:
        raise CheckpointError(Msg(N_("The checkpoint implies {heads} heads; supported: up to {max_heads}."),
                                  heads=heads, max_heads=MAX_HEADS))
    params = depth * (4 * embed_dim * embed_dim + 2 * embed_dim * hidden) + tokens * embed_dim \
        + embed_dim * in_chans * ph * ph
    if params > MAX_PARAMS:
        raise CheckpointError(Msg(N_("The checkpoint declares about {params}M parameters; supported: up to "
                                     "{max_params}M."), params=f"{params / 1e6:.0f}",
                                  max_params=f"{MAX_PARAMS / 1e6:.0f}"))
    return {"img_size": side * ph, "patch_size": ph, "in_chans": in_chans, "embed_dim": embed_dim, "depth": depth,
            "num_heads": heads, "mlp_ratio": hidden / embed_dim}


def vit_from_state_dict(state: dict) -> VisionTransformer:
    """Build a ViT of the size a state_dict describes (official DINO format) and load it strictly.

    Accepts the raw backbone dict, or a training checkpoint with ``teacher``/``student`` entries whose keys
    carry ``module.`` / ``backbone.`` prefixes (the head is dropped). The declared size is bounded (see
    ``MAX_WIDTH`` ...) before the model is built. Every problem is a :class:`CheckpointError`.
    """
    try:
        return _vit_from_state_dict(state)
    except CheckpointError:
        raise
    except Exception as exc:  # anything a crafted or damaged dict can provoke
        raise CheckpointError(Msg(N_("The checkpoint could not be used as a ViT ({error})."),
                                  error=f"{type(exc).__name__}: {str(exc)[:200]}")) from None


def _vit_from_state_dict(state: dict) -> VisionTransformer:
    if not isinstance(state, dict):
        raise CheckpointError(Msg(N_("The checkpoint holds a {type}, not a state_dict."), type=type(state).__name__))
    if "teacher" in state and isinstance(state["teacher"], dict):
        state = state["teacher"]
    bad_keys = [k for k in state if not isinstance(k, str)]
    if bad_keys:
        raise CheckpointError(Msg(N_("The state_dict has non-text keys (e.g. {key}): not a ViT in the DINO format."),
                                  key=repr(bad_keys[0])))
    state = {re.sub(r"^(module\.)?(backbone\.)?", "", k): v for k, v in state.items()
             if not re.match(r"^(module\.)?head\.", k)}
    need = ("cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise CheckpointError(Msg(N_("This file is not a ViT state_dict in the DINO format (missing {keys})."),
                                  keys=", ".join(missing)))
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(Msg(N_("The state_dict holds values that are not tensors (e.g. {key}, a {type}): not "
                                     "a ViT in the DINO format."), key=not_tensors[0],
                                  type=type(state[not_tensors[0]]).__name__))
    size = declared_vit_size(state)
    model = VisionTransformer(size["img_size"], size["patch_size"], size["in_chans"], size["embed_dim"],
                              size["depth"], size["num_heads"], size["mlp_ratio"],
                              qkv_bias="blocks.0.attn.qkv.bias" in state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(Msg(N_("The checkpoint does not match a ViT of its own shapes: {error}"),
                                  error=str(exc)[:300])) from None
    return model.eval()


def load_dino_checkpoint(path: str | Path) -> VisionTransformer:
    """Load an official DINO backbone (``torch.load(..., weights_only=True)`` only) into :class:`VisionTransformer`.

    Every failure (no file, not a torch file, truncated, a non-dict, wrong keys, non-tensors, wrong or oversized
    shapes) is a :class:`CheckpointError` with a message that says what to do.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(Msg(N_("No file at {path}. Download e.g. dino_deitsmall16_pretrain.pth from the DINO "
                                     "repository into {folder}."), path=str(p), folder=str(weights_dir())))
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, a pickle with code in it, truncated...
        raise CheckpointError(Msg(N_("Could not read {name} as a PyTorch state_dict ({error}). Give an official "
                                     "DINO .pth file."), name=p.name, error=type(exc).__name__)) from None
    if not isinstance(state, dict):
        raise CheckpointError(Msg(N_("{name} holds a {type}, not a state_dict."), name=p.name,
                                  type=type(state).__name__))
    return vit_from_state_dict(state)
