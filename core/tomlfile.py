"""Reading the project's small TOML files with one clear error per problem."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from core.errors import AppError


def read_toml(path: str | Path, what: str, error: type[AppError] = AppError) -> dict[str, Any]:
    """The parsed file; ``error("<what> <path>: not found | not valid TOML (...)")`` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path}: not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path}: not valid TOML ({exc})") from exc
