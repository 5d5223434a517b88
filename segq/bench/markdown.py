"""The two things every report script does: record the command that made a table, and
append the table to a Markdown file as a section."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path


def command_line(script: str, argv: list[str] | None = None) -> str:
    """``python <script> <args>`` as typed (``argv`` default: this process's arguments)."""
    return f"python {script} " + shlex.join(sys.argv[1:] if argv is None else argv)


def append_section(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` and a blank line to the Markdown file ``path`` (made if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text.rstrip("\n") + "\n\n")
