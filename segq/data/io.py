"""Read images and label maps with OpenCV, failing with the file's name.

``cv2.imread`` returns ``None`` for a missing, unreadable or corrupt file without saying
which; these readers raise :class:`~segq.data.errors.DataError` subclasses instead. Files are
read as bytes and decoded with ``cv2.imdecode`` so non-ASCII paths work and "missing" is told
apart from "corrupt".

A truncated JPEG is worse than a corrupt one: libjpeg decodes it into a partly grey image and
only prints "Premature end of JPEG file" on stderr, so it would be trained on unnoticed.
PNG and JPEG files are therefore checked for their end marker before decoding.
"""
from __future__ import annotations

import io
import os

import cv2
import numpy as np

from .errors import DataError, ImageDecodeError, MissingFileError, UnreadableFileError

__all__ = ["DataError", "ImageDecodeError", "MissingFileError", "UnreadableFileError",
           "read_image", "read_label", "truncation_problem"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and its (constant) CRC
_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"
_PNG_PALETTE = 3  # IHDR colour type of an indexed-colour PNG
# Some writers pad a file after its end marker (zeros; 0xFF fill bytes in JPEG). Only the
# tail is looked at: the end marker is the file's last non-padding bytes.
_TAIL = 4096


def _read_bytes(path: str | os.PathLike, what: str) -> np.ndarray:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"{what} file not found: {path}", path)
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise UnreadableFileError(f"cannot read {what} file {path}: {e.strerror or e}",
                                  path) from e


def truncation_problem(buf: np.ndarray) -> str | None:
    """Why the PNG or JPEG bytes ``buf`` are incomplete, or ``None`` (other formats: ``None``).

    A JPEG must end with its end-of-image marker FFD9, a PNG with its IEND chunk, each
    possibly followed by padding. Entropy-coded JPEG data never holds FFD9 (0xFF is
    byte-stuffed), so a cut file cannot end in it by chance.
    """
    head = buf[:8].tobytes()
    if head == _PNG_SIGNATURE:
        if not buf[-_TAIL:].tobytes().rstrip(b"\x00").endswith(_PNG_END):
            return "truncated: the PNG ends before its IEND chunk"
    elif head[:3] == _JPEG_SOI:
        if not buf[-_TAIL:].tobytes().rstrip(b"\x00\xff").endswith(_JPEG_EOI):
            return "truncated: the JPEG has no end-of-image marker (FFD9)"
    return None


def _decode(buf: np.ndarray, flags: int, path, what: str) -> np.ndarray:
    path = os.fspath(path)
    if not buf.size:
        raise ImageDecodeError(f"{what} file {path} is empty (0 bytes)", path)
    problem = truncation_problem(buf)
    if problem:
        raise ImageDecodeError(f"{what} file {path} is {problem} ({buf.size} bytes)", path)
    img = cv2.imdecode(buf, flags)
    if img is None:
        raise ImageDecodeError(
            f"cannot decode {what} file {path} ({buf.size} bytes): "
            f"corrupt, truncated or not an image format OpenCV reads", path)
    return img


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Return the image at ``path`` as HWC uint8 RGB (grey and RGBA become 3-channel RGB)."""
    img = _decode(_read_bytes(path, "image"), cv2.IMREAD_COLOR, path, "image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _is_palette_png(buf: np.ndarray) -> bool:
    return buf.size > 26 and buf[:8].tobytes() == _PNG_SIGNATURE and int(buf[25]) == _PNG_PALETTE


def _decode_palette_png(buf: np.ndarray, path) -> np.ndarray:
    problem = truncation_problem(buf)
    if problem:
        raise ImageDecodeError(f"label file {os.fspath(path)} is {problem} ({buf.size} bytes)",
                               os.fspath(path))
    # OpenCV expands a palette to colours (IMREAD_UNCHANGED) or to grey luminance
    # (IMREAD_GRAYSCALE), losing the class indices that VOC-style labels store as palette
    # entries; Pillow returns the indices themselves.
    from PIL import Image
    try:
        with Image.open(io.BytesIO(buf.tobytes())) as im:
            return np.array(im)
    except Exception as e:  # Pillow raises several exception types for bad data
        raise ImageDecodeError(f"cannot decode label file {os.fspath(path)}: {e}",
                               os.fspath(path)) from e


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
            raise DataError(
                f"label file {os.fspath(path)} has {label.shape[2]} channels with different "
                f"values; a label must be a single-channel map of class ids (a colour-coded "
                f"mask has to be converted to class ids first)", os.fspath(path))
    if label.dtype not in (np.uint8, np.uint16):
        raise DataError(f"label file {os.fspath(path)} has dtype {label.dtype}; "
                        f"expected 8- or 16-bit class ids", os.fspath(path))
    return label
