"""The one exception type for a sample that cannot be used.

A :class:`DataError` names the file, and once the dataset knows it, the list file and line
the file was listed on, so one line tells the user what to fix in a 20k-line list. It
pickles with its fields, so it reaches the training process unchanged from a data worker.
"""
from __future__ import annotations

import os
from typing import Optional


class DataError(ValueError):
    """A listed file is missing, unreadable, truncated or inconsistent with its pair.

    ``problem`` is the one-line description (it names the file); ``path`` the offending
    file; ``list_path``/``line`` where it was listed (1-based), when known.
    """

    def __init__(self, problem: str, path: Optional[str] = None,
                 list_path: Optional[str] = None, line: Optional[int] = None):
        super().__init__(problem)
        self.problem = str(problem)
        self.path = None if path is None else os.fspath(path)
        self.list_path = None if list_path is None else os.fspath(list_path)
        self.line = line

    def locate(self, list_path: Optional[str], line: Optional[int]) -> "DataError":
        """Record where the file was listed (kept if already known); returns ``self``."""
        if self.list_path is None and list_path is not None:
            self.list_path, self.line = os.fspath(list_path), line
        return self

    @property
    def where(self) -> str:
        if self.list_path is None:
            return ""
        return f"{self.list_path}, line {self.line}" if self.line else self.list_path

    def __str__(self) -> str:
        return f"{self.problem} (listed in {self.where})" if self.list_path else self.problem

    def __reduce__(self):
        # the default would rebuild from args alone and lose path and list location
        return type(self), (self.problem, self.path, self.list_path, self.line)


class MissingFileError(DataError, FileNotFoundError):
    """A listed image or label file does not exist (also a ``FileNotFoundError``)."""


class UnreadableFileError(DataError, OSError):
    """A listed file exists but cannot be read (permissions, I/O error); also an ``OSError``."""


class ImageDecodeError(DataError):
    """A file exists but cannot be decoded as an image (corrupt, truncated or unsupported)."""
