"""Image + label transforms: ``__call__(sample, rng) -> sample`` (see docs/CONTRACTS.md).

Every geometric transform moves ``sample['img']`` and ``sample['label']`` together: the image
is interpolated (bilinear by default), the label with nearest neighbour so class ids are never
blended, and label padding uses ``label_padding_value`` (the ignore index). All randomness is
drawn from ``rng`` so a sample's augmentation is a function of its seed (exact resume).
Sizes are ``(w, h)`` as in PaddleSeg so configs port unchanged.
``Resize`` and ``Padding`` append ``(op, (h, w) before the op)`` to ``sample['trans_info']``
so a prediction can be mapped back to the original image.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np

from ..registry import TRANSFORMS

_INTERP = {
    "NEAREST": cv2.INTER_NEAREST,
    "LINEAR": cv2.INTER_LINEAR,
    "CUBIC": cv2.INTER_CUBIC,
    "AREA": cv2.INTER_AREA,
    "LANCZOS4": cv2.INTER_LANCZOS4,
}


# ---------------------------------------------------------------- argument checks
def _size_wh(name: str, value: Any) -> tuple[int, int]:
    """``value`` as ``(w, h)`` positive ints; an int means a square."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
                       for v in value)):
        raise ValueError(f"{name} must be 2 positive ints (w, h) or one positive int, "
                         f"got {value!r}")
    return int(value[0]), int(value[1])


def _prob(name: str, value: Any) -> float:
    if not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _pad_value(name: str, value: Any) -> tuple[float, float, float]:
    """A scalar or 3 values, as the 3-tuple cv2.copyMakeBorder wants for an RGB image."""
    if isinstance(value, numbers.Real):
        return (float(value),) * 3
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(
            isinstance(v, numbers.Real) for v in value):
        return tuple(float(v) for v in value)
    raise ValueError(f"{name} must be a number or 3 numbers (one per channel), got {value!r}")


def _label_pad(value: Any) -> int:
    if not isinstance(value, numbers.Integral) or not 0 <= value <= 65535:
        raise ValueError(f"label_padding_value must be an int in [0, 65535] (usually the "
                         f"ignore index 255), got {value!r}")
    return int(value)


# ---------------------------------------------------------------- helpers
def _resize(sample: dict, w: int, h: int, interp: int) -> dict:
    sample["img"] = cv2.resize(sample["img"], (w, h), interpolation=interp)
    if sample.get("label") is not None:
        # INTER_NEAREST_EXACT samples pixel centres like INTER_LINEAR does; plain
        # INTER_NEAREST (PaddleSeg's choice) takes floor(x / scale) and shifts the label up to
        # one source pixel against the image when shrinking below 1/2 (e.g. 2048 -> 512).
        sample["label"] = cv2.resize(sample["label"], (w, h),
                                     interpolation=cv2.INTER_NEAREST_EXACT)
    return sample


def _pad_bottom_right(sample: dict, pad_h: int, pad_w: int, im_value, label_value: int) -> dict:
    if pad_h <= 0 and pad_w <= 0:
        return sample
    pad_h, pad_w = max(pad_h, 0), max(pad_w, 0)
    sample["img"] = cv2.copyMakeBorder(sample["img"], 0, pad_h, 0, pad_w,
                                       cv2.BORDER_CONSTANT, value=im_value)
    if sample.get("label") is not None:
        sample["label"] = cv2.copyMakeBorder(sample["label"], 0, pad_h, 0, pad_w,
                                             cv2.BORDER_CONSTANT, value=label_value)
    return sample


class Compose:
    """Apply transforms in order, threading one ``rng`` through all of them."""

    def __init__(self, transforms: Iterable[Callable] = ()):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"a transform must be callable as t(sample, rng), got {t!r}")

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        for t in self.transforms:
            sample = t(sample, rng)
        return sample

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def build_transforms(specs: Iterable[Any] | Compose | None, **defaults: Any) -> Compose:
    """Build a :class:`Compose` from ``{type: ..., **kwargs}`` dicts or ready callables.

    ``defaults`` fill constructor arguments a spec leaves out (the dataset passes its
    ignore index as ``label_padding_value``/``ignore_index`` so padding is ignored).
    """
    if specs is None:
        return Compose()
    if isinstance(specs, Compose):
        return specs
    if isinstance(specs, (dict, str)) or not isinstance(specs, Iterable):
        raise TypeError(f"transforms must be a list of {{type: ...}} dicts or callables, "
                        f"got {specs!r}")
    built = []
    for i, spec in enumerate(specs):
        if isinstance(spec, dict):
            built.append(TRANSFORMS.build(spec, **defaults))
        elif callable(spec):
            built.append(spec)
        else:
            raise TypeError(f"transforms[{i}] must be a {{type: ...}} dict or a callable, "
                            f"got {spec!r}")
    return Compose(built)


def transform_image(transforms: Compose, image: np.ndarray, path: str = "") -> dict:
    """One HxWx3 RGB image through prediction-time (deterministic) ``transforms`` -> a sample
    with a CHW float32 ``img`` and the ``trans_info`` that maps predictions back."""
    sample = {"img": image, "img_path": path, "trans_info": []}
    # prediction transforms draw no random numbers; the rng only fulfils the contract
    sample = transforms(sample, np.random.default_rng(0))
    sample["img"] = np.ascontiguousarray(sample["img"].transpose(2, 0, 1), dtype=np.float32)
    return sample


# ---------------------------------------------------------------- geometric
@TRANSFORMS.register
class Resize:
    """Resize to ``target_size`` (w, h); with ``keep_ratio`` fit inside it, keeping aspect."""

    def __init__(self, target_size: Sequence[int] | int = (512, 512), interp: str = "LINEAR",
                 keep_ratio: bool = False):
        self.target_size = _size_wh("Resize.target_size", target_size)
        if interp != "RANDOM" and interp not in _INTERP:
            raise ValueError(f"Resize.interp must be one of {sorted(_INTERP)} or 'RANDOM', "
                             f"got {interp!r}")
        self.interp = interp
        self.keep_ratio = bool(keep_ratio)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        h, w = sample["img"].shape[:2]
        sample.setdefault("trans_info", []).append(("resize", (h, w)))
        tw, th = self.target_size
        if self.keep_ratio:
            scale = min(tw / w, th / h)
            tw, th = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
        if self.interp == "RANDOM":
            names = sorted(_INTERP)
            interp = _INTERP[names[int(rng.integers(len(names)))]]
        else:
            interp = _INTERP[self.interp]
        if (tw, th) == (w, h):
            return sample
        return _resize(sample, tw, th, interp)


@TRANSFORMS.register
class ResizeStepScaling:
    """Scale by a factor drawn from ``min..max`` in steps of ``scale_step_size``
    (uniformly from the interval when the step is 0)."""

    def __init__(self, min_scale_factor: float = 0.75, max_scale_factor: float = 1.25,
                 scale_step_size: float = 0.25):
        for name, v in (("min_scale_factor", min_scale_factor),
                        ("max_scale_factor", max_scale_factor)):
            if not isinstance(v, numbers.Real) or v <= 0:
                raise ValueError(f"ResizeStepScaling.{name} must be > 0, got {v!r}")
        if min_scale_factor > max_scale_factor:
            raise ValueError(f"ResizeStepScaling: min_scale_factor ({min_scale_factor}) must "
                             f"not exceed max_scale_factor ({max_scale_factor})")
        if not isinstance(scale_step_size, numbers.Real) or scale_step_size < 0:
            raise ValueError(f"ResizeStepScaling.scale_step_size must be >= 0, "
                             f"got {scale_step_size!r}")
        self.min_scale_factor = float(min_scale_factor)
        self.max_scale_factor = float(max_scale_factor)
        self.scale_step_size = float(scale_step_size)
        span = self.max_scale_factor - self.min_scale_factor
        if span == 0:
            self._factors = np.array([self.min_scale_factor])
        elif self.scale_step_size == 0:
            self._factors = None  # continuous
        else:
            # the small epsilon keeps e.g. (2.0 - 0.5) / 0.25 from flooring to 5
            n = int(span / self.scale_step_size + 1e-9) + 1
            self._factors = self.min_scale_factor + self.scale_step_size * np.arange(n)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        if self._factors is None:
            scale = float(rng.uniform(self.min_scale_factor, self.max_scale_factor))
        else:
            scale = float(self._factors[int(rng.integers(len(self._factors)))])
        if scale == 1.0:
            return sample
        h, w = sample["img"].shape[:2]
        return _resize(sample, max(1, int(round(w * scale))), max(1, int(round(h * scale))),
                       cv2.INTER_LINEAR)


@TRANSFORMS.register
class RandomPaddingCrop:
    """Crop ``crop_size`` (w, h) at a random place, padding bottom/right first if the image is
    smaller. With ``category_max_ratio < 1``, redraw the crop (up to 10 times) while one class
    covers more than that share of the crop's labelled pixels."""

    def __init__(self, crop_size: Sequence[int] | int = (512, 512),
                 im_padding_value: float | Sequence[float] = 127.5,
                 label_padding_value: int = 255, category_max_ratio: float = 1.0,
                 ignore_index: int = 255):
        self.crop_size = _size_wh("RandomPaddingCrop.crop_size", crop_size)
        self.im_padding_value = _pad_value("RandomPaddingCrop.im_padding_value",
                                           im_padding_value)
        self.label_padding_value = _label_pad(label_padding_value)
        if not isinstance(category_max_ratio, numbers.Real) or not 0 < category_max_ratio <= 1:
            raise ValueError(f"RandomPaddingCrop.category_max_ratio must be in (0, 1], "
                             f"got {category_max_ratio!r}")
        self.category_max_ratio = float(category_max_ratio)
        self.ignore_index = int(ignore_index)

    def _balanced(self, label_crop: np.ndarray) -> bool:
        counts = np.bincount(label_crop.ravel())
        if self.ignore_index < counts.size:
            counts[self.ignore_index] = 0
        counts = counts[counts > 0]
        return counts.size > 1 and counts.max() / counts.sum() < self.category_max_ratio

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        cw, ch = self.crop_size
        h, w = sample["img"].shape[:2]
        sample = _pad_bottom_right(sample, ch - h, cw - w, self.im_padding_value,
                                   self.label_padding_value)
        h, w = sample["img"].shape[:2]
        if (h, w) == (ch, cw):
            return sample
        label = sample.get("label")
        tries = 10 if (self.category_max_ratio < 1.0 and label is not None) else 1
        for _ in range(tries):
            y = int(rng.integers(h - ch + 1))
            x = int(rng.integers(w - cw + 1))
            if tries == 1 or self._balanced(label[y:y + ch, x:x + cw]):
                break
        sample["img"] = sample["img"][y:y + ch, x:x + cw]
        if label is not None:
            sample["label"] = label[y:y + ch, x:x + cw]
        return sample


@TRANSFORMS.register
class RandomHorizontalFlip:
    """Mirror left-right with probability ``prob``."""

    def __init__(self, prob: float = 0.5):
        self.prob = _prob("RandomHorizontalFlip.prob", prob)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        if rng.random() < self.prob:
            # cv2.flip returns a contiguous copy; a [:, ::-1] view would trip later cv2 calls
            sample["img"] = cv2.flip(sample["img"], 1)
            if sample.get("label") is not None:
                sample["label"] = cv2.flip(sample["label"], 1)
        return sample


@TRANSFORMS.register
class RandomVerticalFlip:
    """Mirror top-bottom with probability ``prob``."""

    def __init__(self, prob: float = 0.1):
        self.prob = _prob("RandomVerticalFlip.prob", prob)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        if rng.random() < self.prob:
            sample["img"] = cv2.flip(sample["img"], 0)
            if sample.get("label") is not None:
                sample["label"] = cv2.flip(sample["label"], 0)
        return sample


@TRANSFORMS.register
class Padding:
    """Pad bottom/right up to ``target_size`` (w, h); an image larger than it is an error."""

    def __init__(self, target_size: Sequence[int] | int,
                 im_padding_value: float | Sequence[float] = 127.5,
                 label_padding_value: int = 255):
        self.target_size = _size_wh("Padding.target_size", target_size)
        self.im_padding_value = _pad_value("Padding.im_padding_value", im_padding_value)
        self.label_padding_value = _label_pad(label_padding_value)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        h, w = sample["img"].shape[:2]
        tw, th = self.target_size
        if h > th or w > tw:
            raise ValueError(f"Padding: image {sample.get('img_path', '')} is {w}x{h} (w x h), "
                             f"larger than target_size {tw}x{th}; resize it first")
        sample.setdefault("trans_info", []).append(("padding", (h, w)))
        return _pad_bottom_right(sample, th - h, tw - w, self.im_padding_value,
                                 self.label_padding_value)


# ---------------------------------------------------------------- photometric
# ITU-R 601 luma weights, the grey that PIL's ImageEnhance (used by PaddleSeg) blends with.
_LUMA = np.array([0.299, 0.587, 0.114])
# Rotating colours about the grey axis approximates an HSV hue shift as one 3x3 matrix.
_GREY_AXIS = np.ones(3) / np.sqrt(3.0)
_CROSS = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]]) / np.sqrt(3.0)


@TRANSFORMS.register
class RandomDistort:
    """PaddleSeg's colour jitter (brightness, contrast, saturation, hue, sharpness), each applied
    with its own probability in a random order.

    Brightness, contrast, saturation and hue are all affine maps of the RGB vector, so they
    are composed into one 3x4 matrix and applied in a single ``cv2.transform`` pass (clipping
    once at the end rather than after each step, as PIL does). Factors are drawn from
    ``1 +- range``; ``hue_range`` is in PaddleSeg's units (1/256 of a turn, 18 ~ 25 degrees).
    Sharpness blends with a 3x3 smoothed image like PIL's ``ImageEnhance.Sharpness``.
    """

    def __init__(self, brightness_range: float = 0.5, brightness_prob: float = 0.5,
                 contrast_range: float = 0.5, contrast_prob: float = 0.5,
                 saturation_range: float = 0.5, saturation_prob: float = 0.5,
                 hue_range: float = 18, hue_prob: float = 0.5,
                 sharpness_range: float = 0.5, sharpness_prob: float = 0.0):
        def rng_check(name, v, hi):
            if not isinstance(v, numbers.Real) or not 0 <= v <= hi:
                raise ValueError(f"RandomDistort.{name} must be in [0, {hi}], got {v!r}")
            return float(v)

        self.brightness_range = rng_check("brightness_range", brightness_range, 1)
        self.contrast_range = rng_check("contrast_range", contrast_range, 1)
        self.saturation_range = rng_check("saturation_range", saturation_range, 1)
        self.hue_range = rng_check("hue_range", hue_range, 128)
        self.sharpness_range = rng_check("sharpness_range", sharpness_range, 1)
        self.brightness_prob = _prob("RandomDistort.brightness_prob", brightness_prob)
        self.contrast_prob = _prob("RandomDistort.contrast_prob", contrast_prob)
        self.saturation_prob = _prob("RandomDistort.saturation_prob", saturation_prob)
        self.hue_prob = _prob("RandomDistort.hue_prob", hue_prob)
        self.sharpness_prob = _prob("RandomDistort.sharpness_prob", sharpness_prob)

    @staticmethod
    def _hue_matrix(delta: float) -> np.ndarray:
        theta = 2.0 * np.pi * delta / 256.0
        u = _GREY_AXIS[:, None]
        return (np.cos(theta) * np.eye(3) + np.sin(theta) * _CROSS
                + (1.0 - np.cos(theta)) * (u @ u.T))

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        img = sample["img"]
        ops = ("brightness", "contrast", "saturation", "hue", "sharpness")
        A, b = np.eye(3), np.zeros(3)      # current colour map: x -> A @ x + b
        mean_rgb = None
        sharp = None
        for k in rng.permutation(len(ops)):
            op = ops[k]
            if rng.random() >= getattr(self, f"{op}_prob"):
                continue
            if op == "hue":
                M, c = self._hue_matrix(rng.uniform(-self.hue_range, self.hue_range)), 0.0
            else:
                r = getattr(self, f"{op}_range")
                f = float(rng.uniform(1.0 - r, 1.0 + r))
                if op == "sharpness":
                    sharp = f  # spatial and linear: commutes with the colour map
                    continue
                if op == "brightness":
                    M, c = f * np.eye(3), 0.0
                elif op == "saturation":
                    M, c = f * np.eye(3) + (1.0 - f) * np.outer(np.ones(3), _LUMA), 0.0
                else:  # contrast: blend with the mean grey level of the current image
                    if mean_rgb is None:
                        mean_rgb = np.array(cv2.mean(img)[:3])
                    grey = float(_LUMA @ (A @ mean_rgb + b))
                    M, c = f * np.eye(3), (1.0 - f) * grey
            A, b = M @ A, M @ b + c
        if not np.array_equal(A, np.eye(3)) or b.any():
            if img.dtype == np.uint8:
                # uint8 in, uint8 out: cv2 rounds and saturates to [0, 255] itself
                img = cv2.transform(img, np.hstack([A, b[:, None]]))
            else:
                img = np.clip(img @ A.T.astype(np.float32) + b.astype(np.float32), 0, 255)
        if sharp is not None:
            kernel = np.full((3, 3), 1.0 / 13.0) * (1.0 - sharp)
            kernel[1, 1] = 5.0 / 13.0 * (1.0 - sharp) + sharp
            img = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REPLICATE)
        sample["img"] = img
        return sample


@TRANSFORMS.register
class Normalize:
    """``img = (img / 255 - mean) / std`` per channel, as float32."""

    def __init__(self, mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.5, 0.5, 0.5)):
        def triple(name, v):
            if isinstance(v, numbers.Real):
                v = (v,) * 3
            if not isinstance(v, (list, tuple)) or len(v) != 3 or not all(
                    isinstance(x, numbers.Real) for x in v):
                raise ValueError(f"Normalize.{name} must be 3 numbers (R, G, B), got {v!r}")
            return np.array(v, dtype=np.float64)

        self.mean = triple("mean", mean)
        self.std = triple("std", std)
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize.std must be > 0, got {tuple(self.std)}")
        # one multiply-add per pixel instead of divide, subtract, divide
        self._scale = (1.0 / (255.0 * self.std)).astype(np.float32)
        self._offset = (-self.mean / self.std).astype(np.float32)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        img = sample["img"]
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"Normalize expects an HxWx3 image, got shape {img.shape}")
        # Work plane by plane into a CHW buffer and hand back its HWC view: 5x faster than
        # astype + broadcast on a 2-core CPU, and the dataset's final HWC->CHW step is then
        # free. Later cv2 transforms accept the strided view (they copy it).
        out = np.empty((3,) + img.shape[:2], np.float32)
        for c in range(3):
            plane = out[c]
            plane[...] = img[:, :, c]
            plane *= self._scale[c]
            plane += self._offset[c]
        sample["img"] = out.transpose(1, 2, 0)
        return sample
