"""Atomic file writes: a reader (or a killed run) never sees half a file."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path``.

    The file gets the user's umask (0644 under umask 022), as ``open(path, "w")`` would give it: mkstemp's
    0600 would hide a submission or metadata file from other users and tools.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _create_temp(path: Path) -> tuple[int, str]:
    """A new, exclusive temp file beside ``path``, mode 0666 less the umask (no umask call: thread-safe)."""
    while True:
        tmp = str(path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp"))
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_json(path: str | Path, data: Any, indent: int | None = None) -> None:
    atomic_write_text(path, json.dumps(data, indent=indent))
