"""segq.data: list files, readers, datasets, transforms, sampler and loaders."""
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segq.data  # noqa: F401  (registers datasets and transforms)
from segq.data import transforms as T
from segq.data.ade20k import ADE20K
from segq.data.camvid import CamVid
from segq.data.cityscapes import Cityscapes
from segq.data.dataset import Dataset
from segq.data.download import DownloadError, download_and_extract, ensure_dataset
from segq.data.io import ImageDecodeError, read_image, read_label
from segq.data.list_file import parse_list_lines, read_list_file
from segq.data.loader import (InfiniteShardedSampler, build_eval_loader, build_train_loader,
                              collate_train)
from segq.data.optic_disc_seg import OpticDiscSeg
from segq.data.pascal_voc import PascalVOC
from segq.data.synthetic import SyntheticScenes
from segq.registry import DATASETS, TRANSFORMS, RegistryError

from conftest import write_pair

# ------------------------------------------------------------------ list files
PATH_TEXT = st.text(alphabet="abcXYZ019_-./", min_size=1, max_size=12)
SEPARATORS = [" ", "|", ",", "\t"]


@given(pairs=st.lists(st.tuples(PATH_TEXT, PATH_TEXT), min_size=0, max_size=20),
       sep=st.sampled_from(SEPARATORS), blanks=st.lists(st.integers(0, 20), max_size=4))
def test_list_lines_round_trip(pairs, sep, blanks):
    lines = [f"{a}{sep}{b}\n" for a, b in pairs]
    for pos in blanks:  # blank lines anywhere are skipped
        lines.insert(min(pos, len(lines)), "  \n")
    assert parse_list_lines(lines, sep) == pairs


@given(pairs=st.lists(st.tuples(PATH_TEXT, PATH_TEXT), min_size=1, max_size=10),
       pos=st.integers(0, 10), bad=st.sampled_from(["a b c", "only_one", "a  b  c  d"]))
def test_malformed_line_names_source_and_line(pairs, pos, bad):
    lines = [f"{a} {b}" for a, b in pairs]
    pos = min(pos, len(lines))
    lines.insert(pos, bad)
    with pytest.raises(ValueError, match=rf"my\.txt, line {pos + 1}:"):
        parse_list_lines(lines, " ", source="my.txt")


def test_list_file_labels_optional_for_tests_and_paths_joined(tmp_path):
    f = tmp_path / "l.txt"
    f.write_text("a.png\n/abs/b.png c.png\n\n")
    assert read_list_file(f, "root", require_label=False) == [
        ("root/a.png", None), ("/abs/b.png", "root/c.png")]
    with pytest.raises(ValueError, match=r"l\.txt, line 1"):
        read_list_file(f, "root")
    with pytest.raises(ValueError, match="line 1"):
        parse_list_lines(["a.png|"], "|")  # an empty field is malformed
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_list_file(tmp_path / "missing.txt", tmp_path)


# ------------------------------------------------------------------ readers
def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(tmp_path / "nope.png")
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ImageDecodeError, match="corrupt.png"):
        read_image(bad)
    with pytest.raises(ImageDecodeError, match="corrupt.png"):
        read_label(bad)


def test_read_image_is_rgb_and_labels_keep_ids(tmp_path):
    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 0] = 200  # red
    write_pair(tmp_path, "x", img, np.full((4, 5), 7, np.uint16) * 1000)
    assert read_image(tmp_path / "images/x.png")[0, 0].tolist() == [200, 0, 0]
    lab = read_label(tmp_path / "labels/x.png")
    assert lab.dtype == np.uint16 and (lab == 7000).all()


def test_palette_label_gives_indices_not_colours(tmp_path):
    from PIL import Image
    ids = np.array([[0, 1, 2], [15, 255, 1]], np.uint8)
    im = Image.fromarray(ids, mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [64] * (768 - 9))
    im.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_label(tmp_path / "p.png"), ids)


# ------------------------------------------------------------------ generic Dataset
def test_dataset_contract(tiny_dataset_dir):
    ds = Dataset(tiny_dataset_dir, num_classes=3, mode="train", train_path="train.txt",
                 transforms=[{"type": "Normalize"}])
    assert (len(ds), ds.num_classes, ds.ignore_index, ds.mode) == (3, 3, 255, "train")
    assert ds.file_list[0] == (str(tiny_dataset_dir / "images/im0.png"),
                               str(tiny_dataset_dir / "labels/im0.png"))
    s = ds[0]
    assert s["img"].shape == (3, 24, 32) and s["img"].dtype == np.float32
    assert s["label"].shape == (24, 32) and s["label"].dtype == np.int64
    assert -1 <= s["img"].min() and s["img"].max() <= 1
    assert set(np.unique(s["label"])) <= {0, 1, 2, 255}
    assert (ds[(1, 5)]["img"] == ds[(1, 5)]["img"]).all()
    with pytest.raises(IndexError):
        ds[3]
    val = Dataset(tiny_dataset_dir, 3, mode="val", val_path=str(tiny_dataset_dir / "val.txt"))
    assert len(val) == 1 and val[0]["ori_label"].shape == (24, 32)
    test = Dataset(tiny_dataset_dir, 3, mode="test", test_path="test.txt")
    assert "label" not in test[0] and test.file_list[0][1] is None


def test_dataset_built_from_registry_config(tiny_dataset_dir):
    ds = DATASETS.build({"type": "Dataset", "dataset_root": str(tiny_dataset_dir),
                         "num_classes": 3, "train_path": "train.txt",
                         "transforms": [{"type": "RandomPaddingCrop", "crop_size": [40, 30]},
                                        T.Normalize()]})
    s = ds[0]
    assert s["img"].shape == (3, 30, 40)
    assert (s["label"][24:, :] == 255).all()  # padding is labelled ignore
    with pytest.raises(RegistryError, match="crop_sise"):
        DATASETS.build({"type": "Dataset", "dataset_root": str(tiny_dataset_dir),
                        "num_classes": 3, "train_path": "train.txt",
                        "transforms": [{"type": "RandomPaddingCrop", "crop_sise": [4, 4]}]})


def test_dataset_argument_errors(tiny_dataset_dir):
    with pytest.raises(ValueError, match="train_path"):
        Dataset(tiny_dataset_dir, 3)
    with pytest.raises(ValueError, match="mode"):
        Dataset(tiny_dataset_dir, 3, mode="eval", train_path="train.txt")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        Dataset(tiny_dataset_dir / "nowhere", 3, train_path="train.txt")
    with pytest.raises(FileNotFoundError, match="other.txt"):
        Dataset(tiny_dataset_dir, 3, train_path="other.txt")
    with pytest.raises(ValueError, match="ignore_index"):
        Dataset(tiny_dataset_dir, 3, train_path="train.txt", ignore_index=2)


def test_bad_label_value_names_file_and_values(tiny_dataset_dir):
    ds = Dataset(tiny_dataset_dir, num_classes=2, train_path="train.txt")
    with pytest.raises(ValueError) as e:
        ds[0]
    msg = str(e.value)
    assert "labels/im0.png" in msg and "values 2" in msg and "0..1" in msg and "255" in msg
    # remapping the extra class to ignore makes it valid
    ok = Dataset(tiny_dataset_dir, num_classes=2, train_path="train.txt", label_remap={2: 255})
    assert set(np.unique(ok[0]["label"])) <= {0, 1, 255}


def test_size_mismatch_names_both_files(tiny_dataset_dir):
    cv2.imwrite(str(tiny_dataset_dir / "labels/im1.png"), np.zeros((10, 10), np.uint8))
    ds = Dataset(tiny_dataset_dir, 3, train_path="train.txt")
    with pytest.raises(ValueError, match=r"images/im1\.png is 32x24.*labels/im1\.png is 10x10"):
        ds[1]


def test_corrupt_image_in_dataset_names_file(tiny_dataset_dir):
    (tiny_dataset_dir / "images/im2.png").write_bytes(b"not a png")
    with pytest.raises(ImageDecodeError, match="im2.png"):
        Dataset(tiny_dataset_dir, 3, train_path="train.txt")[2]


# ------------------------------------------------------------------ named datasets
def test_camvid(camvid_root):
    for mode, n in (("train", 367), ("val", 101), ("test", 233)):
        ds = CamVid(camvid_root, mode=mode)
        assert len(ds) == n and ds.num_classes == 11 and ds.ignore_index == 255
        for i in (0, n - 1):
            s = ds[i]
            assert s["img"].shape == (3, 360, 480)
            values = set(np.unique(s["label"]).tolist())
            assert values <= set(range(11)) | {255}, values


def test_camvid_missing_root_explains_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="trainannot"):
        CamVid(tmp_path / "camvid")


def _tree_image(path: Path, img=None, label=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if label is not None:
        assert cv2.imwrite(str(path), label)
    else:
        assert cv2.imwrite(str(path), np.full((8, 10, 3), 90, np.uint8))


def test_cityscapes_layout(tmp_path):
    for city, stem in (("aachen", "aachen_000000_000019"), ("bonn", "bonn_000001_000019")):
        _tree_image(tmp_path / "leftImg8bit/train" / city / f"{stem}_leftImg8bit.png")
        _tree_image(tmp_path / "gtFine/train" / city / f"{stem}_gtFine_labelTrainIds.png",
                    label=np.full((8, 10), 18, np.uint8))
    ds = Cityscapes(tmp_path, mode="train")
    assert len(ds) == 2 and ds.num_classes == 19
    assert ds.file_list[0][1].endswith("aachen_000000_000019_gtFine_labelTrainIds.png")
    assert (ds[1]["label"] == 18).all()


def test_ade20k_shifts_labels(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    _tree_image(root / "images/validation/ADE_val_1.jpg")
    lab = np.zeros((8, 10), np.uint8)
    lab[:, 5:] = 150
    _tree_image(root / "annotations/validation/ADE_val_1.png", label=lab)
    s = ADE20K(root, mode="val")[0]
    assert (s["label"][:, :5] == 255).all() and (s["label"][:, 5:] == 149).all()


def test_pascal_voc_reads_palette_labels(tmp_path):
    from PIL import Image
    voc = tmp_path / "VOCdevkit/VOC2012"
    _tree_image(voc / "JPEGImages/2007_000032.jpg")
    ids = np.full((8, 10), 15, np.uint8)
    ids[0] = 255
    (voc / "SegmentationClass").mkdir(parents=True)
    im = Image.fromarray(ids, mode="P")
    im.putpalette([i % 256 for i in range(768)])
    im.save(voc / "SegmentationClass/2007_000032.png")
    (voc / "ImageSets/Segmentation").mkdir(parents=True)
    (voc / "ImageSets/Segmentation/val.txt").write_text("2007_000032\n")
    s = PascalVOC(tmp_path / "VOCdevkit", mode="val")[0]
    assert (s["label"][1:] == 15).all() and (s["label"][0] == 255).all()
    with pytest.raises(FileNotFoundError, match="train.txt"):
        PascalVOC(tmp_path / "VOCdevkit", mode="train")


def test_optic_disc_seg_lists(tiny_dataset_dir):
    (tiny_dataset_dir / "train_list.txt").write_text("images/im0.png labels/im0.png\n")
    with pytest.raises(ValueError, match="values 2"):  # the tiny labels hold 3 classes
        OpticDiscSeg(tiny_dataset_dir)[0]
    with pytest.raises(FileNotFoundError, match="download=True"):
        OpticDiscSeg(tiny_dataset_dir / "absent")


# ------------------------------------------------------------------ downloads (no network)
def test_download_and_extract_from_file_url(tmp_path):
    archive = tmp_path / "src" / "pack.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pack/hello.txt", "hi")
    cache = tmp_path / "cache"
    out = download_and_extract(archive.as_uri(), cache)
    assert (out / "pack/hello.txt").read_text() == "hi"
    assert not list(cache.glob("*.part"))
    assert ensure_dataset(cache / "pack", "Pack", "layout") == str(cache / "pack")


def test_download_failure_says_where_to_put_files(tmp_path):
    with pytest.raises(DownloadError, match=r"no network.*cache[/\\]gone\.zip"):
        download_and_extract((tmp_path / "gone.zip").as_uri(), tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.part"))


# ------------------------------------------------------------------ synthetic
def test_synthetic_scenes_deterministic_and_split_by_mode():
    train = SyntheticScenes(num_samples=8, num_classes=5)
    again = SyntheticScenes(num_samples=8, num_classes=5)
    val = SyntheticScenes(num_samples=8, num_classes=5, mode="val")
    a, b, v = train[3], again[3], val[3]
    np.testing.assert_array_equal(a["img"], b["img"])
    np.testing.assert_array_equal(a["label"], b["label"])
    assert not np.array_equal(a["label"], v["label"])
    assert a["img"].shape == (3, 96, 128) and a["label"].dtype == np.int64
    labels = np.stack([train[i]["label"] for i in range(8)])
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4, 255}
    assert 0 < (labels == 255).mean() < 0.01
    small = SyntheticScenes(num_samples=2, num_classes=2, image_size=(32, 48))
    assert set(np.unique(small[0]["label"])) <= {0, 1, 255}
    assert len(train.file_list) == 8 and "train" in train.file_list[0][0]


# ------------------------------------------------------------------ transforms
PALETTE = np.array([[10, 200, 30], [220, 20, 60], [40, 40, 240], [250, 250, 10],
                    [120, 0, 180]], np.uint8)


def palette_sample(h=60, w=80, seed=0):
    """Blocky label, image = colour of each pixel's class: alignment is checkable."""
    rng = np.random.default_rng(seed)
    label = np.kron(rng.integers(0, 5, (h // 4, w // 4)), np.ones((4, 4), int)).astype(np.uint8)
    return {"img": PALETTE[label], "label": label, "trans_info": []}


def assert_aligned(s):
    img, label = s["img"], s["label"]
    assert img.shape[:2] == label.shape
    match = (img[:, :, None, :] == PALETTE[None, None]).all(-1)
    exact = match.any(-1)
    assert exact.mean() > 0.3, "too few untouched pixels to check"
    np.testing.assert_array_equal(label[exact], match.argmax(-1)[exact])
    # the only other label value is the ignore padding
    assert set(np.unique(label[~exact])) <= set(range(5)) | {255}


GEOMETRIC = [
    lambda: T.Resize((37, 29)),
    lambda: T.Resize((200, 150), keep_ratio=True),
    lambda: T.Resize((24, 18)),  # shrink below 1/2: where plain INTER_NEAREST drifts
    lambda: T.ResizeStepScaling(0.3, 2.0, 0.1),
    lambda: T.RandomPaddingCrop((50, 70)),
    lambda: T.RandomPaddingCrop((100, 100), category_max_ratio=0.6),
    lambda: T.RandomHorizontalFlip(1.0),
    lambda: T.RandomVerticalFlip(1.0),
    lambda: T.Padding((90, 70)),
]


@pytest.mark.parametrize("make", GEOMETRIC)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_geometric_transforms_keep_image_and_label_aligned(make, seed):
    s = make()(palette_sample(seed=seed), np.random.default_rng(seed))
    assert_aligned(s)


def test_crop_and_flip_move_pixels_exactly():
    h, w = 40, 50
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([yy, xx, np.full_like(yy, 255)], -1).astype(np.uint8)
    label = ((yy * 7 + xx * 3) % 5).astype(np.uint8)
    pipe = T.Compose([T.RandomPaddingCrop((60, 30)), T.RandomHorizontalFlip(0.5)])
    for seed in range(5):
        s = pipe({"img": img.copy(), "label": label.copy()}, np.random.default_rng(seed))
        real = s["img"][..., 2] == 255
        got = s["img"][real].astype(int)
        np.testing.assert_array_equal(s["label"][real], (got[:, 0] * 7 + got[:, 1] * 3) % 5)
        assert (s["label"][~real] == 255).all() and (s["img"][~real] == 128).all()


def test_resize_and_padding_record_trans_info():
    s = T.Compose([T.Resize((40, 30)), T.Padding((50, 45))])(palette_sample(),
                                                             np.random.default_rng(0))
    assert s["trans_info"] == [("resize", (60, 80)), ("padding", (30, 40))]
    assert s["img"].shape[:2] == (45, 50)
    with pytest.raises(ValueError, match="larger than target_size"):
        T.Padding((10, 10))(palette_sample(), np.random.default_rng(0))


def test_full_pipeline_deterministic_given_seed():
    pipe = T.build_transforms([
        {"type": "ResizeStepScaling", "min_scale_factor": 0.5, "max_scale_factor": 2.0},
        {"type": "RandomPaddingCrop", "crop_size": [64, 48]},
        {"type": "RandomHorizontalFlip"}, {"type": "RandomDistort"}, {"type": "Normalize"}])
    outs = [pipe(palette_sample(), np.random.default_rng(s)) for s in (7, 7, 8)]
    np.testing.assert_array_equal(outs[0]["img"], outs[1]["img"])
    np.testing.assert_array_equal(outs[0]["label"], outs[1]["label"])
    assert not np.array_equal(outs[0]["img"], outs[2]["img"])
    assert outs[0]["img"].dtype == np.float32 and outs[0]["img"].shape == (48, 64, 3)


def test_random_distort_changes_colour_only():
    d = T.RandomDistort(brightness_prob=1, contrast_prob=1, saturation_prob=1, hue_prob=1,
                        sharpness_prob=1)
    s = palette_sample()
    label = s["label"].copy()
    out = d(s, np.random.default_rng(0))
    assert out["img"].dtype == np.uint8 and out["img"].shape == (60, 80, 3)
    np.testing.assert_array_equal(out["label"], label)
    identity = T.RandomDistort(0, 1, 0, 1, 0, 1, 0, 1, 0, 1)
    img = palette_sample()["img"]
    np.testing.assert_array_equal(identity({"img": img.copy()}, np.random.default_rng(0))["img"],
                                  img)
    grey = np.full((4, 4, 3), 100, np.uint8)  # hue and saturation leave grey grey
    hs = T.RandomDistort(0, 0, 0, 0, 0.5, 1, 30, 1)
    g = hs({"img": grey}, np.random.default_rng(1))["img"]
    assert (np.abs(g.astype(int) - 100) <= 1).all()


def test_normalize():
    s = T.Normalize()({"img": np.array([[[0, 255, 51]]], np.uint8)}, None)
    np.testing.assert_allclose(s["img"], [[[-1.0, 1.0, -0.6]]], atol=1e-6)
    assert s["img"].dtype == np.float32 and s["img"].shape == (1, 1, 3)
    s = T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])(
        {"img": np.full((2, 2, 3), 128, np.uint8)}, None)
    np.testing.assert_allclose(s["img"][0, 0], (128 / 255 - np.array([0.485, 0.456, 0.406]))
                               / np.array([0.229, 0.224, 0.225]), rtol=1e-5)


@pytest.mark.parametrize("cfg, match", [
    ({"type": "RandomPaddingCrop", "crop_size": [0, 5]}, "crop_size must be 2 positive ints"),
    ({"type": "RandomPaddingCrop", "crop_size": [1, 2, 3]}, "crop_size"),
    ({"type": "RandomPaddingCrop", "crop_size": "512"}, "crop_size"),
    ({"type": "Resize", "target_size": [2.5, 3]}, "target_size"),
    ({"type": "Resize", "interp": "BILINEAR"}, "interp"),
    ({"type": "ResizeStepScaling", "min_scale_factor": 2, "max_scale_factor": 1}, "exceed"),
    ({"type": "RandomHorizontalFlip", "prob": 1.5}, "probability"),
    ({"type": "RandomDistort", "hue_range": -1}, "hue_range"),
    ({"type": "Normalize", "std": [0.5, 0, 0.5]}, "std"),
    ({"type": "Normalize", "mean": [0.5, 0.5]}, "mean"),
    ({"type": "Padding", "target_size": [4, 4], "im_padding_value": [1, 2]}, "im_padding"),
])
def test_transform_argument_errors(cfg, match):
    with pytest.raises(ValueError, match=match):
        TRANSFORMS.build(cfg)


# ------------------------------------------------------------------ every registered transform
# Arguments that make each transform act on palette_sample() (60x80) every time; a transform
# not listed runs with its defaults.
TRANSFORM_ARGS = {
    "Resize": {"target_size": [37, 29]},
    "ResizeStepScaling": {"min_scale_factor": 0.5, "max_scale_factor": 0.5},
    "RandomPaddingCrop": {"crop_size": [100, 50]},  # pads the width, crops the height
    "RandomHorizontalFlip": {"prob": 1.0},
    "RandomVerticalFlip": {"prob": 1.0},
    "Padding": {"target_size": [90, 70]},
    # (sharpness, a spatial filter, stays off: the check below is per pixel)
    "RandomDistort": {"brightness_prob": 1.0, "contrast_prob": 1.0, "saturation_prob": 1.0,
                      "hue_prob": 1.0},
    "Normalize": {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.3, 0.4]},
}


def test_transform_args_name_registered_transforms():
    assert set(TRANSFORM_ARGS) <= set(TRANSFORMS.names())


@pytest.mark.parametrize("name", TRANSFORMS.names())
@pytest.mark.parametrize("seed", [0, 1])
def test_every_registered_transform_keeps_image_and_label_aligned(name, seed):
    sample = palette_sample(seed=seed)
    img0, label0 = sample["img"].copy(), sample["label"].copy()
    out = TRANSFORMS.build({"type": name, **TRANSFORM_ARGS.get(name, {})})(
        sample, np.random.default_rng(seed))
    img, label = np.asarray(out["img"]), out["label"]
    assert img.ndim == 3 and img.shape[2] == 3 and img.shape[:2] == label.shape
    assert not (np.array_equal(img, img0) and np.array_equal(label, label0)), "did nothing"
    if label.shape == label0.shape and np.array_equal(label, label0):
        # pixels stayed put: the image may change colour, but each class one way, and to
        # colours that still tell the classes apart
        colours = img.reshape(label.size, 3)
        classes = np.unique(label)
        for c in classes:
            assert (colours[label.ravel() == c] == colours[label.ravel() == c][0]).all(), c
        assert len({tuple(colours[label.ravel() == c][0]) for c in classes}) == len(classes)
    else:
        assert_aligned(out)


# ------------------------------------------------------------------ every registered dataset
def _label(values, h=8, w=10):
    """An h x w uint8 label cycling through ``values``, column by column."""
    return np.resize(np.asarray(values, np.uint8), w)[None, :].repeat(h, 0)


def _fake_list_dataset(root: Path, list_name: str, raw) -> None:
    write_pair(root, "a", np.full(raw.shape + (3,), 90, np.uint8), raw)
    (root / list_name).write_text("images/a.png labels/a.png\n")


def fake_dataset(name: str, root: Path):
    """A tiny on-disk layout for dataset ``name`` -> (its config, the label sample 0 must
    have after the dataset's remapping; None where the samples are generated)."""
    if name == "Dataset":
        raw = _label([0, 1, 2, 255])
        _fake_list_dataset(root, "train.txt", raw)
        return {"dataset_root": str(root), "num_classes": 3, "train_path": "train.txt"}, raw
    if name == "CamVid":
        raw = _label([0, 5, 10, 11])  # 11 is void
        _fake_list_dataset(root, "train.txt", raw)
        return {"dataset_root": str(root)}, _label([0, 5, 10, 255])
    if name == "OpticDiscSeg":
        raw = _label([0, 1])
        _fake_list_dataset(root, "train_list.txt", raw)
        return {"dataset_root": str(root)}, raw
    if name == "Cityscapes":
        raw = _label([0, 18, 255])
        _tree_image(root / "leftImg8bit/train/ulm/ulm_000000_000019_leftImg8bit.png")
        _tree_image(root / "gtFine/train/ulm/ulm_000000_000019_gtFine_labelTrainIds.png",
                    label=raw)
        return {"dataset_root": str(root)}, raw
    if name == "ADE20K":
        _tree_image(root / "images/training/ADE_train_1.jpg")
        _tree_image(root / "annotations/training/ADE_train_1.png", label=_label([0, 1, 150]))
        return {"dataset_root": str(root)}, _label([255, 0, 149])
    if name == "PascalVOC":
        raw = _label([0, 15, 20, 255])
        voc = root / "VOC2012"
        _tree_image(voc / "JPEGImages/2007_000032.jpg")
        _tree_image(voc / "SegmentationClass/2007_000032.png", label=raw)
        (voc / "ImageSets/Segmentation/train.txt").parent.mkdir(parents=True)
        (voc / "ImageSets/Segmentation/train.txt").write_text("2007_000032\n")
        return {"dataset_root": str(root)}, raw
    if name == "SyntheticScenes":
        return {"num_samples": 1, "image_size": [32, 48]}, None
    pytest.fail(f"add a tiny layout for dataset {name} to fake_dataset in tests/test_data.py")


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_registered_dataset_builds_from_a_tiny_layout(name, tmp_path):
    spec, expected = fake_dataset(name, tmp_path / "data")
    ds = DATASETS.build({"type": name, **spec})
    assert type(ds) is DATASETS.get(name) and len(ds) == 1 and ds.mode == "train"
    s = ds[0]
    assert s["img"].dtype == np.float32 and s["label"].dtype == np.int64
    assert s["img"].shape == (3, *s["label"].shape)
    if expected is None:
        assert set(np.unique(s["label"])) <= set(range(ds.num_classes)) | {ds.ignore_index}
    else:
        np.testing.assert_array_equal(s["label"], expected)


# ------------------------------------------------------------------ sampler
@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), batch=st.integers(1, 6), world=st.integers(1, 3),
       k=st.integers(0, 30), seed=st.integers(0, 2**32))
def test_sampler_resume_equals_tail_of_uninterrupted_run(n, batch, world, k, seed):
    if n // world < batch:
        with pytest.raises(ValueError, match="one batch"):
            InfiniteShardedSampler(n, batch, seed, 0, world)
        return
    full = iter(InfiniteShardedSampler(n, batch, seed, world - 1, world))
    sequence = [next(full) for _ in range(k + 5)]
    resumed = iter(InfiniteShardedSampler(n, batch, seed, world - 1, world, start_iter=k))
    assert [next(resumed) for _ in range(5)] == sequence[k:]


def test_sampler_shards_are_disjoint_and_epochs_differ():
    n, batch = 23, 3
    per_rank = [InfiniteShardedSampler(n, batch, seed=5, rank=r, world_size=2) for r in (0, 1)]
    bpe = per_rank[0].batches_per_epoch
    assert bpe == (n // 2) // batch
    epochs = []
    for e in range(2):
        keys = [[key for i in range(e * bpe, (e + 1) * bpe) for key in s.batch(i)]
                for s in per_rank]
        idx0, idx1 = {k[0] for k in keys[0]}, {k[0] for k in keys[1]}
        assert not idx0 & idx1 and len(idx0) == len(idx1) == bpe * batch
        seeds = [k[1] for ks in keys for k in ks]
        assert len(set(seeds)) == len(seeds)
        epochs.append(keys[0])
    assert epochs[0] != epochs[1]


def test_collate_train_shapes_and_errors():
    ds = SyntheticScenes(num_samples=3, image_size=(16, 20), transforms=[{"type": "Normalize"}])
    img, label = collate_train([ds[i] for i in range(3)])
    assert img.shape == (3, 3, 16, 20) and img.dtype == np.float32
    assert label.shape == (3, 16, 20) and label.dtype == np.int64
    other = SyntheticScenes(num_samples=1, image_size=(16, 24))
    with pytest.raises(ValueError, match="differ in size"):
        collate_train([ds[0], other[0]])


# ------------------------------------------------------------------ paddle loaders
class KeyEcho(SyntheticScenes):
    """Writes the key it was called with into the label, so the batch reveals it."""

    def __getitem__(self, key):
        assert isinstance(key, tuple), f"DataLoader passed {key!r}, not the (index, seed) key"
        s = super().__getitem__(key)
        s["label"][0, :2] = [key[0], key[1] % 251]
        return s


@pytest.mark.parametrize("workers", [0, 2])
def test_train_loader_passes_keys_and_resumes(workers):
    # the parent runs cv2 multi-threaded first: a worker that then called cv2.setNumThreads
    # deadlocked on the inherited thread pool
    cv2.resize(np.zeros((1000, 1000, 3), np.float32), (1500, 1500))
    ds = KeyEcho(num_samples=10, image_size=(16, 16), transforms=[{"type": "RandomDistort"}])
    expected = iter(InfiniteShardedSampler(10, 3, seed=4))
    batches = build_train_loader(ds, 3, workers, seed=4)
    seen = []
    for _ in range(5):
        img, label = next(batches)
        assert list(img.shape) == [3, 3, 16, 16] and str(label.dtype) == "paddle.int64"
        keys = next(expected)
        assert label.numpy()[:, 0, :2].tolist() == [[i, s % 251] for i, s in keys]
        seen.append(img.numpy())
    resumed = build_train_loader(ds, 3, workers, seed=4, start_iter=3)
    for i in (3, 4):
        np.testing.assert_array_equal(next(resumed)[0].numpy(), seen[i])


def test_eval_loader_same_with_and_without_workers():
    ds = SyntheticScenes(num_samples=3, mode="val", image_size=(24, 32),
                         transforms=[{"type": "Resize", "target_size": [20, 16]},
                                     {"type": "Normalize"}])
    plain, pooled = list(build_eval_loader(ds, 0)), list(build_eval_loader(ds, 2))
    assert len(plain) == len(pooled) == 3
    for a, b in zip(plain, pooled):
        assert set(a) == set(b) and a["trans_info"] == b["trans_info"] == [("resize", (24, 32))]
        for k in ("img", "label", "ori_label"):
            assert isinstance(b[k], np.ndarray)
            np.testing.assert_array_equal(a[k], b[k])
        assert a["img"].shape == (3, 16, 20) and a["ori_label"].shape == (24, 32)
