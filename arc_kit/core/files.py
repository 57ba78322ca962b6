"""Files and folders: atomic writes (a reader, or a killed run, never sees half a file), the check that an output
folder is not a file, a folder made for a block and removed again if the block fails, and the folder walk behind
the searches for inputs."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from arc_kit.errors import ArcKitError


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path``.

    The file gets the user's umask (0644 under umask 022), as ``open(path, "w")`` would give it: mkstemp's
    0600 would hide a submission or metadata file from other users and tools. A failure (a read-only folder, a
    full disk) raises an ``OSError`` naming ``path``, not the temp file the user never asked for.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(path)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename != str(path.parent):
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
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


# ---------------------------------------------------------------------------------------------------------------
# Folders


class NotAFolderError(ArcKitError, ValueError):
    """A path given for a folder to write into is a file, or lies inside one; the message names the flag or
    setting, the path and the file in the way."""


def check_folder_path(path: str | Path, what: str) -> Path:
    """``path`` as a folder to write into, refused (``NotAFolderError``) when it or a parent is a file: checked
    before anything is loaded or written, so a wrong path costs nothing. ``what`` names where the path came from
    (``--out``, ``train.output_dir``)."""
    path = Path(path)
    for place in (path, *path.parents):
        if place.exists() and not place.is_dir():
            raise NotAFolderError(f"{what} {path}: {place} is a file, not a folder (nothing written)")
    return path


@contextlib.contextmanager
def made_folder(folder: str | Path | None) -> Iterator[None]:
    """``folder`` made for the block (with its missing parents); what the block made is removed again when it
    fails, so a refused run or a failed download leaves no folder behind. A folder that was there before, and
    what it held, is left as it was."""
    if folder is None:
        yield
        return
    path = Path(folder).absolute()
    made = next((p for p in [*reversed(path.parents), path] if not p.exists()), None)
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise


def folders_below(root: Path, max_depth: int) -> Iterator[Path]:
    """Folders below ``root`` (root included) down to ``max_depth`` levels, breadth first, sorted, not entering
    hidden folders; an unreadable folder is passed over."""
    level = [root]
    for _ in range(max_depth + 1):
        nxt: list[Path] = []
        for folder in level:
            yield folder
            try:
                nxt += sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
        level = nxt
