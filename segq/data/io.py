"""Read images and label maps with OpenCV, failing with the file's name.

``cv2.imread`` returns ``None`` for a missing, unreadable or corrupt file without saying
which; these readers raise instead. Files are read as bytes and decoded with
``cv2.imdecode`` so non-ASCII paths work and "missing" is told apart from "corrupt".
"""
from __future__ import annotations

import io
import os

import cv2
import numpy as np

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_PALETTE = 3  # IHDR colour type of an indexed-colour PNG


class ImageDecodeError(ValueError):
    """A file exists but cannot be decoded as an image (corrupt or unsupported format)."""


def _read_bytes(path: str | os.PathLike, what: str) -> np.ndarray:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise OSError(f"cannot read {what} file {path}: {e}") from e


def _decode(buf: np.ndarray, flags: int, path, what: str) -> np.ndarray:
    img = cv2.imdecode(buf, flags) if buf.size else None
    if img is None:
        raise ImageDecodeError(
            f"cannot decode {what} file {os.fspath(path)} ({buf.size} bytes): "
            f"corrupt, truncated or not an image format OpenCV reads")
    return img


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Return the image at ``path`` as HWC uint8 RGB (grey and RGBA become 3-channel RGB)."""
    img = _decode(_read_bytes(path, "image"), cv2.IMREAD_COLOR, path, "image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _is_palette_png(buf: np.ndarray) -> bool:
    return buf.size > 26 and buf[:8].tobytes() == _PNG_SIGNATURE and int(buf[25]) == _PNG_PALETTE


def _decode_palette_png(buf: np.ndarray, path) -> np.ndarray:
    # OpenCV expands a palette to colours (IMREAD_UNCHANGED) or to grey luminance
    # (IMREAD_GRAYSCALE), losing the class indices that VOC-style labels store as palette
    # entries; Pillow returns the indices themselves.
    from PIL import Image
    try:
        with Image.open(io.BytesIO(buf.tobytes())) as im:
            return np.array(im)
    except Exception as e:  # Pillow raises several exception types for bad data
        raise ImageDecodeError(f"cannot decode label file {os.fspath(path)}: {e}") from e


def read_label(path: str | os.PathLike) -> np.ndarray:
    """Return the class-id map at ``path`` as HW uint8 or uint16.

    8/16-bit grey PNGs are read unchanged; palette PNGs give their palette indices;
    a 3-channel file is accepted only if its channels are equal (a grey map saved as RGB).
    """
    buf = _read_bytes(path, "label")
    if _is_palette_png(buf):
        label = _decode_palette_png(buf, path)
    else:
        label = _decode(buf, cv2.IMREAD_UNCHANGED, path, "label")
    if label.ndim == 3:
        if label.shape[2] >= 3 and np.array_equal(label[..., 0], label[..., 1]) \
                and np.array_equal(label[..., 0], label[..., 2]):
            label = np.ascontiguousarray(label[..., 0])
        else:
            raise ValueError(
                f"label file {os.fspath(path)} has {label.shape[2]} channels with different "
                f"values; a label must be a single-channel map of class ids (a colour-coded "
                f"mask has to be converted to class ids first)")
    if label.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"label file {os.fspath(path)} has dtype {label.dtype}; "
                         f"expected 8- or 16-bit class ids")
    return label
