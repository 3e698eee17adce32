"""Checks on the files a command will write, made before any work so that a bad path fails at
once, naming it, instead of after minutes of processing."""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import AppError


class OutputPathError(AppError):
    """A file cannot be written where the user asked."""


def check_output(path: Path, flag: str, suffix: str | tuple[str, ...] | None = None, create_folder: bool = False) -> Path:
    """``path`` must be a file name (not a folder) in a writable folder that exists, or, with
    ``create_folder`` (reports under ``out/`` on a fresh clone), one that can be made now.
    ``suffix``: the required file type(s) (``np.savez`` would silently append ``.npz`` otherwise,
    OpenCV fails on a name it cannot tell the format from)."""
    where = f"{flag} {path}" if flag else str(path)
    if path.is_dir():
        raise OutputPathError(f"{where}: is a folder; give a file name")
    allowed = (suffix,) if isinstance(suffix, str) else suffix
    if allowed is not None and path.suffix.lower() not in allowed:
        raise OutputPathError(f"{where}: the file name must end in {' or '.join(allowed)} (not {path.suffix or 'no suffix'!r})")
    folder = path.parent
    if not folder.is_dir():
        blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if blocking is not None and not blocking.is_dir():
            raise OutputPathError(f"{where}: {blocking} is a file, not a folder")
        if not create_folder:
            raise OutputPathError(f"{where}: the folder {folder} does not exist")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputPathError(f"{where}: cannot create the folder {folder} ({exc.strerror or exc})") from exc
    if not os.access(folder, os.W_OK):
        raise OutputPathError(f"{where}: the folder {folder} is not writable")
    return path
