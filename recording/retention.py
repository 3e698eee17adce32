"""Retention: recorded sessions older than the room's ``retention_days`` are deleted.

Only folders directly under the recordings root that are recorded sessions (a ``session.json``
holding a JSON object with ``format_version`` and ``cameras``) are ever deleted; anything else is
left alone and logged. A session's age runs from its start (``started`` in session.json, local
time), or from session.json's modification time when that cannot be read. Never deleted: the
sessions named ``active`` (being recorded), symbolic links, and a session that was never finalised
(no ``ended``) but was written to in the last ``IN_PROGRESS_S`` seconds (another process may still
be recording it).
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from recording.writer import RecordingError

log = logging.getLogger(__name__)

DAY_S = 86400.0
IN_PROGRESS_S = 600.0


def purge_sessions(root: str | Path, days: float, now: float | None = None, active: Iterable[str | Path] = ()) -> list[Path]:
    """Delete the sessions under ``root`` that started more than ``days`` days before ``now``
    (time.time() seconds; default: now) and return them. ``days`` = 0 keeps everything. A session
    that cannot be deleted is logged and skipped."""
    if not (isinstance(days, int | float) and math.isfinite(days) and days >= 0):
        raise RecordingError(f"retention: {days!r} days, expected a number of days >= 0 (0 keeps every session)")
    root = Path(root)
    if days == 0 or not root.is_dir():
        return []
    now = time.time() if now is None else now
    keep = {Path(p).resolve() for p in active}
    deleted = []
    for folder in sorted(root.iterdir()):
        if _expired(folder, now - days * DAY_S, keep, now):
            try:
                shutil.rmtree(folder)
            except OSError as exc:
                log.warning("retention: could not delete the session %s (%s)", folder, exc.strerror or exc)
                continue
            log.info("retention: deleted the session %s (older than %g days)", folder, days)
            deleted.append(folder)
    return deleted


def _expired(folder: Path, cutoff: float, keep: set[Path], now: float) -> bool:
    if folder.is_symlink() or not folder.is_dir() or folder.resolve() in keep:
        return False
    meta = _session_meta(folder)
    if meta is None:
        return False
    if "ended" not in meta and now - _last_write(folder) < IN_PROGRESS_S:
        log.info("retention: keeping %s (not finalised and written to in the last %.0f s)", folder, IN_PROGRESS_S)
        return False
    return session_start(folder, meta) < cutoff


def _session_meta(folder: Path) -> dict[str, object] | None:
    """session.json's object when ``folder`` is a recorded session, else None (logged when it has
    a session.json that is not one)."""
    path = folder / "session.json"
    if path.is_symlink() or not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("retention: keeping %s (its session.json is unreadable: %s)", folder, exc)
        return None
    if not isinstance(meta, dict) or "format_version" not in meta or "cameras" not in meta:
        log.warning("retention: keeping %s (its session.json is not a recorded session's)", folder)
        return None
    return meta


def session_start(folder: Path, meta: dict[str, object]) -> float:
    """When the session started (time.time() seconds): ``started`` in session.json, else
    session.json's modification time."""
    started = meta.get("started")
    if isinstance(started, str):
        try:
            return datetime.datetime.fromisoformat(started).timestamp()
        except ValueError:
            pass
    log.info("retention: %s/session.json has no readable start time (%r); using its modification time", folder, started)
    return (folder / "session.json").stat().st_mtime


def _last_write(folder: Path) -> float:
    """The newest modification time of the session's files (not following links)."""
    times = [p.lstat().st_mtime for p in folder.rglob("*")]
    return max([folder.lstat().st_mtime, *times])
