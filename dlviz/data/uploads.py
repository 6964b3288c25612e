"""Images a user uploads: bounded in bytes and pixels before they are decoded, shrunk before they reach torch.

:func:`read_user_image` is the one gate: PNG or JPEG bytes in, an RGB ``uint8`` array out, or an
:class:`ImageRejected` whose message says what to do. The pixel count is read from the file's header (PIL opens
lazily), so a small file that declares a huge image is refused without decoding it.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from ..i18n import N_, Msg

MAX_UPLOAD_MB = 10  # the same number as server.maxUploadSize in .streamlit/config.toml
MAX_PIXELS = 40_000_000  # declared width x height; a 12 Mpx phone photo passes, a decompression bomb does not
MAX_SIDE = 1024  # longer side after shrinking; the attention maps are computed at a short side of 112-320 px
MIN_SIDE = 16  # shorter side: one 16-pixel patch
MAX_ASPECT = 2.0  # wider (or taller) images are center-cropped to 2:1, which bounds the number of patches
FORMATS = ("PNG", "JPEG")


class ImageRejected(ValueError):
    """An upload that is not used; the message says why and what to upload instead (a :class:`dlviz.i18n.Msg`:
    English, shown translated with ``tr(exc.args[0])``)."""


def _crop_aspect(img, max_aspect: float):
    w, h = img.size
    if w > max_aspect * h:
        nw = int(max_aspect * h)
        return img.crop(((w - nw) // 2, 0, (w - nw) // 2 + nw, h))
    if h > max_aspect * w:
        nh = int(max_aspect * w)
        return img.crop((0, (h - nh) // 2, w, (h - nh) // 2 + nh))
    return img


def read_user_image(data: bytes, max_bytes: int = MAX_UPLOAD_MB * 2**20, max_pixels: int = MAX_PIXELS,
                    max_side: int = MAX_SIDE) -> np.ndarray:
    """Decode an uploaded PNG/JPEG into an (H, W, 3) ``uint8`` array with ``max(H, W) <= max_side``.

    Refused with :class:`ImageRejected`: more than ``max_bytes``; not a PNG or JPEG; a header declaring more than
    ``max_pixels`` (checked before decoding; PIL's own decompression-bomb limits are errors too); a truncated or
    corrupt file; a side under 16 pixels. Images longer than 2:1 are center-cropped to 2:1.
    """
    from PIL import Image, ImageOps

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageRejected(Msg(N_("The upload could not be read: expected the bytes of a PNG or JPEG file.")))
    size = len(data)
    if size > max_bytes:
        raise ImageRejected(Msg(N_("That file is {mb} MB: upload an image under {max_mb} MB."),
                                mb=f"{size / 2**20:.1f}", max_mb=f"{max_bytes / 2**20:.0f}"))
    if size == 0:
        raise ImageRejected(Msg(N_("That file is empty: upload a PNG or JPEG image.")))
    with warnings.catch_warnings():
        # PIL warns above ~89 Mpx and raises above twice that; both are refusals here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(bytes(data)), formats=FORMATS)
            w, h = img.size  # from the header: nothing is decoded yet
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(Msg(N_("That image declares too many pixels: upload one under {max_mp} megapixels."),
                                    max_mp=f"{max_pixels / 1e6:.0f}")) from None
        except Exception as exc:  # UnidentifiedImageError, a bad header, SyntaxError from a plugin, ...
            raise ImageRejected(Msg(N_("That file could not be read as a PNG or JPEG image ({error}): upload a PNG "
                                       "or JPEG."), error=type(exc).__name__)) from None
        if w * h > max_pixels:
            raise ImageRejected(Msg(N_("That image is {w} x {h} pixels ({mp} megapixels): upload one under {max_mp} "
                                       "megapixels."), w=w, h=h, mp=f"{w * h / 1e6:.0f}",
                                    max_mp=f"{max_pixels / 1e6:.0f}"))
        if min(w, h) < MIN_SIDE:
            raise ImageRejected(Msg(N_("That image is {w} x {h} pixels: upload one at least {min_side} pixels on each "
                                       "side."), w=w, h=h, min_side=MIN_SIDE))
        try:
            img.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale directly (no-op for PNG)
            img.load()
            try:
                img = ImageOps.exif_transpose(img)  # phone photos: the orientation the camera recorded
            except Exception:  # a broken EXIF block does not make the pixels unusable
                pass
            img = _crop_aspect(img.convert("RGB"), MAX_ASPECT)
            img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)  # only ever shrinks
            out = np.asarray(img, dtype=np.uint8)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(Msg(N_("That image declares too many pixels: upload one under {max_mp} megapixels."),
                                    max_mp=f"{max_pixels / 1e6:.0f}")) from None
        except Exception as exc:  # truncated data, a corrupt chunk, an unsupported mode, out of memory, ...
            raise ImageRejected(Msg(N_("That image could not be decoded ({error}; the file may be truncated or "
                                       "corrupt): upload another PNG or JPEG."), error=type(exc).__name__)) from None
    if out.ndim != 3 or out.shape[2] != 3 or min(out.shape[:2]) < 1:
        raise ImageRejected(Msg(N_("That image could not be converted to RGB: upload another PNG or JPEG.")))
    return out
