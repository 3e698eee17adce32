"""Reading the project's ``.npz`` files with one clear error per problem (never pickles)."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from core.errors import AppError


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (library messages can run to many lines)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_npz(path: str | Path, what: str, error: type[AppError] = AppError) -> dict[str, np.ndarray]:
    """Every array of the file; ``error("<what> <path>: ...")`` when it is missing, empty, not a
    zip archive, truncated or damaged."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path}: not found")
    try:
        with path.open("rb") as handle:
            magic = handle.read(2)
        if not magic:
            raise error(f"{what} {path}: the file is empty")
        if magic != b"PK":
            raise error(f"{what} {path}: not a readable .npz (not a zip archive)")
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise error(f"{what} {path}: not a readable .npz (truncated, damaged or not a zip: {one_line(exc)})") from exc
    except (ValueError, OSError, KeyError) as exc:
        raise error(f"{what} {path}: not a readable .npz ({one_line(exc)})") from exc
