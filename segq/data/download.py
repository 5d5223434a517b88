"""Fetch a file (and unpack an archive) into a cache directory, for users with a network.

Nothing in segq downloads unless asked. Downloads go to ``<name>.part`` and are renamed
when complete, so an interrupted download never looks finished; without a network the
error says where to put the file by hand.

A download is untrusted input. ``url#sha256=<hex>`` (or an entry in :data:`KNOWN_SHA256`)
pins the file: its bytes are hashed while they arrive and a mismatch deletes them before
anything is unpacked or read. Weights (:func:`check_weights_url`) come only over https.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

_CHUNK = 1 << 20
logger = logging.getLogger("segq")

# URL (without fragment) -> sha256 of its bytes, used when the URL carries no #sha256=.
# Empty on purpose: segq is developed without a network, so no published archive's hash has
# been computed here, and a hash copied from elsewhere and never checked would pin nothing.
# Add an entry only from a hash computed on a real download (segq logs it after each one).
KNOWN_SHA256: dict[str, str] = {}

_SHA256_FRAGMENT = re.compile(r"sha256=([0-9a-fA-F]{64})")


class DownloadError(ValueError):
    """A URL segq refuses, or a download whose bytes are not the ones pinned."""


def split_sha256(url: str) -> tuple[str, str | None]:
    """``(url without fragment, expected sha256 or None)`` from ``url#sha256=<hex>``, else
    from :data:`KNOWN_SHA256`."""
    base, sep, fragment = url.partition("#")
    if not sep:
        return url, KNOWN_SHA256.get(url)
    match = _SHA256_FRAGMENT.fullmatch(fragment)
    if match is None:
        raise DownloadError(f"{url}: the URL fragment must be #sha256=<64 hex digits>, "
                            f"got #{fragment}")
    return base, match.group(1).lower()


def check_weights_url(url: str) -> None:
    """Weights decide what a model computes: fetch them only over https, where nobody on the
    way can swap them (``file://`` is a local file, not a download)."""
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme not in ("https", "file"):
        raise DownloadError(f"refusing to download weights from {url}: only https:// URLs are "
                            f"allowed ({scheme or 'no scheme'}:// downloads can be altered on "
                            f"the way); use the https URL, or download the file and give its "
                            f"local path")


def _filename(url: str) -> str:
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise ValueError(f"cannot tell a file name from the URL {url!r}")
    return name


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, part: Path, target: Path, timeout: float) -> str:
    """Stream ``url`` into ``part``; return the sha256 of the bytes written."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as e:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"could not download {url} ({e}); this machine may have no network. Download it "
            f"elsewhere and place it at {target} (or unpack it there by hand)") from e
    return digest.hexdigest()


def download_file(url: str, cache_dir: str | os.PathLike, timeout: float = 60.0,
                  sha256: str | None = None) -> Path:
    """Download ``url`` into ``cache_dir`` once and return the file's path.

    With ``sha256`` the bytes must hash to it, checked before the file is published under
    its name (a cached file is checked too); a mismatch deletes the file and raises
    :class:`DownloadError` naming both hashes."""
    cache_dir = Path(cache_dir)
    target = cache_dir / _filename(url)
    if target.is_file():
        if sha256 is None or _sha256_of(target) == sha256:
            return target
        logger.warning(f"{target} does not have the pinned sha256; downloading it again")
        target.unlink()
        _marker(target).unlink(missing_ok=True)  # what was unpacked from it is stale too
    cache_dir.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    got = _fetch(url, part, target, timeout)
    if sha256 is not None and got != sha256:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: sha256 mismatch, expected {sha256}, got {got}; "
                            f"the download was deleted")
    if sha256 is None:  # say what arrived, so the user can pin it from now on
        logger.warning(f"downloaded {url} unchecked: no sha256 was pinned; its sha256 is "
                       f"{got} (append #sha256={got} to the URL to pin it)")
    os.replace(part, target)
    return target


def _marker(archive: Path) -> Path:
    return archive.with_name(f".{archive.name}.extracted")


def _safe_members(names: list[str], dest: Path, archive: Path) -> None:
    root = dest.resolve()
    for name in names:
        if not (root / name).resolve().is_relative_to(root):
            raise DownloadError(f"archive {archive} has a member outside its folder: {name!r}")


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
        raise DownloadError(f"{archive} is neither a zip nor a tar archive")
    return dest


def download_and_extract(url: str, cache_dir: str | os.PathLike, timeout: float = 60.0,
                         sha256: str | None = None) -> Path:
    """Download the archive at ``url`` into ``cache_dir`` and unpack it there (once).

    Returns ``cache_dir``. A marker file records a finished extraction, so a run killed
    halfway through unpacking extracts again instead of using a partial tree. ``sha256``
    is checked (see :func:`download_file`) before anything is unpacked.
    """
    cache_dir = Path(cache_dir)
    archive = download_file(url, cache_dir, timeout, sha256)
    marker = _marker(archive)
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
            raise DownloadError(f"unpacking {url} into {root.parent} did not create "
                               f"{root}; point dataset_root at the unpacked {name} folder")
        return os.fspath(root)
    how = (f"pass download=True to fetch {url}, or download and unpack it by hand"
           if url else "download it by hand")
    raise FileNotFoundError(f"{name} not found at {root}: {how}. Expected layout:\n{layout}")
