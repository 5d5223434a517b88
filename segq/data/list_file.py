"""PaddleSeg-style list files: one ``image_path<sep>label_path`` pair a line.

Paths in a list are relative to the dataset root (absolute paths are kept as they are).
Test lists may leave out the label. Errors name the list file and the 1-based line, because
a broken line in a 20k-line list is otherwise hard to find; each parsed pair keeps its line
(:class:`ListEntry`) so a bad file found later while training is reported the same way.
"""
from __future__ import annotations

import os
from typing import Iterable, Optional

Pair = tuple[str, Optional[str]]


class ListEntry(tuple):
    """An ``(image, label_or_None)`` pair that remembers the list file and 1-based line it
    came from. It is a plain 2-tuple to everything else (unpacking, ``==``, indexing), so
    code written for pairs keeps working."""

    def __new__(cls, image: str, label: Optional[str], list_path: Optional[str] = None,
                line: Optional[int] = None):
        entry = super().__new__(cls, (image, label))
        entry.list_path, entry.line = list_path, line
        return entry

    @property
    def image(self) -> str:
        return self[0]

    @property
    def label(self) -> Optional[str]:
        return self[1]

    def __getnewargs__(self):  # pickling (data workers) keeps the location
        return self[0], self[1], self.list_path, self.line

    def __repr__(self) -> str:
        return (f"ListEntry({self[0]!r}, {self[1]!r}, list_path={self.list_path!r}, "
                f"line={self.line})")


def _split(line: str, separator: str) -> list[str]:
    # ' ' (PaddleSeg's default) means "any run of whitespace", so lists aligned with several
    # spaces or tabs still parse; any other separator is split on exactly.
    if separator == " ":
        return line.split()
    return [item.strip() for item in line.split(separator)]


def parse_list_lines(lines: Iterable[str], separator: str = " ", require_label: bool = True,
                     source: str = "<list>") -> list[ListEntry]:
    """Parse list lines into ``(image, label_or_None)`` pairs (:class:`ListEntry`, with
    ``source`` and the line number), paths exactly as written.

    Blank lines are skipped. A line must hold two fields, or one when ``require_label`` is
    false (test lists); anything else raises ``ValueError`` naming ``source`` and the line.
    """
    if not isinstance(separator, str) or separator == "":
        raise ValueError(f"separator must be a non-empty string, got {separator!r}")
    pairs: list[ListEntry] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        items = _split(line, separator)
        want = "'image_path{0}label_path'".format(separator) if require_label else \
            "'image_path' or 'image_path{0}label_path'".format(separator)
        if len(items) > 2 or (len(items) == 1 and require_label) or any(not i for i in items):
            raise ValueError(
                f"{source}, line {lineno}: expected {want} (separator {separator!r}), "
                f"got {len(items)} field(s) in {line!r}")
        pairs.append(ListEntry(items[0], items[1] if len(items) == 2 else None, source, lineno))
    return pairs


def read_list_file(list_path: str | os.PathLike, dataset_root: str | os.PathLike,
                   separator: str = " ", require_label: bool = True) -> list[ListEntry]:
    """Read ``list_path`` and return ``(image_path, label_path_or_None)`` joined to the root,
    each a :class:`ListEntry` that knows its line in ``list_path``."""
    list_path = os.fspath(list_path)
    if not os.path.isfile(list_path):
        raise FileNotFoundError(f"list file not found: {list_path}")
    with open(list_path, encoding="utf-8") as f:
        pairs = parse_list_lines(f, separator, require_label, source=list_path)
    root = os.fspath(dataset_root)
    # os.path.join keeps an absolute second argument as it is
    return [ListEntry(os.path.join(root, e.image),
                      None if e.label is None else os.path.join(root, e.label), list_path, e.line)
            for e in pairs]
