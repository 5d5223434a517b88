"""Fetch a file (and unpack an archive) into a cache directory, for users with a network.

Nothing in segq downloads unless asked. Downloads go to ``<name>.part`` and are renamed
when complete, so an interrupted download never looks finished; without a network the
error says where to put the file by hand.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

_CHUNK = 1 << 20


def _filename(url: str) -> str:
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise ValueError(f"cannot tell a file name from the URL {url!r}")
    return name


def download_file(url: str, cache_dir: str | os.PathLike, timeout: float = 60.0) -> Path:
    """Download ``url`` into ``cache_dir`` once and return the file's path."""
    cache_dir = Path(cache_dir)
    target = cache_dir / _filename(url)
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
            shutil.copyfileobj(resp, out, _CHUNK)
    except (urllib.error.URLError, OSError, ValueError) as e:
        part.unlink(missing_ok=True)
        raise RuntimeError(
            f"could not download {url} ({e}); this machine may have no network. Download it "
            f"elsewhere and place it at {target} (or unpack it there by hand)") from e
    os.replace(part, target)
    return target


def _safe_members(names: list[str], dest: Path, archive: Path) -> None:
    root = dest.resolve()
    for name in names:
        if not (root / name).resolve().is_relative_to(root):
            raise RuntimeError(f"archive {archive} has a member outside its folder: {name!r}")


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack a .zip/.tar(.gz/.bz2/.xz) into ``dest`` (refusing members that escape it)."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _safe_members(zf.namelist(), dest, archive)
            zf.extractall(dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            _safe_members(tf.getnames(), dest, archive)
            tf.extractall(dest, filter="data")
    else:
        raise RuntimeError(f"{archive} is neither a zip nor a tar archive")
    return dest


def download_and_extract(url: str, cache_dir: str | os.PathLike, timeout: float = 60.0) -> Path:
    """Download the archive at ``url`` into ``cache_dir`` and unpack it there (once).

    Returns ``cache_dir``. A marker file records a finished extraction, so a run killed
    halfway through unpacking extracts again instead of using a partial tree.
    """
    cache_dir = Path(cache_dir)
    archive = download_file(url, cache_dir, timeout)
    marker = cache_dir / f".{archive.name}.extracted"
    if not marker.is_file():
        extract_archive(archive, cache_dir)
        marker.touch()
    return cache_dir


def ensure_dataset(dataset_root: str | os.PathLike, name: str, layout: str,
                   url: str | None = None, download: bool = False) -> str:
    """Return ``dataset_root`` if it exists; else download it (only if asked) or explain.

    The archive at ``url`` is unpacked next to ``dataset_root`` and must create it.
    """
    root = Path(dataset_root)
    if root.is_dir():
        return os.fspath(root)
    if download and url:
        download_and_extract(url, root.parent)
        if not root.is_dir():
            raise RuntimeError(f"unpacking {url} into {root.parent} did not create "
                               f"{root}; point dataset_root at the unpacked {name} folder")
        return os.fspath(root)
    how = (f"pass download=True to fetch {url}, or download and unpack it by hand"
           if url else "download it by hand")
    raise FileNotFoundError(f"{name} not found at {root}: {how}. Expected layout:\n{layout}")
