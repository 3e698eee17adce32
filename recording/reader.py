"""Read a recorded session's results back: the chunks, and the log of the chunk being gathered
when the recording was cut short. An unreadable chunk is skipped and named
(:attr:`Results.skipped`), never fatal on its own. Its events (``events.jsonl``) read with
:func:`read_events`, and what video it kept (privacy) with :func:`video_mode`. The session's
frames replay through capture.recorded.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capture.recorded import SessionError
from core.formats import upgrade_results
from core.types import EVENT_FORMAT_VERSION
from recording.writer import EVENTS_NAME, VIDEO_MODES, concat_rows, read_log_records

log = logging.getLogger(__name__)


# --- results ----------------------------------------------------------------------------------------
@dataclass
class Results:
    """A session's results joined in set order, in the results layout (README "Results files";
    see recording.writer.row_arrays), and what could not be read: ``skipped`` maps a file name to the reason."""

    arrays: dict[str, np.ndarray]
    skipped: dict[str, str] = field(default_factory=dict)
    from_log: int = 0  # sets read from the log of an unfinished chunk

    def __len__(self) -> int:
        return len(self.arrays.get("set_index", ()))


def _chunk_index(path: Path) -> int | None:
    match = re.fullmatch(r"chunk_(\d+)\.(npz|log)", path.name)
    return int(match.group(1)) if match else None


def _check_part(part: dict[str, np.ndarray], views: int | None) -> str | None:
    """Why a chunk's arrays are unusable (None when fine)."""
    for key in ("set_index", "timestamps", "keypoints"):
        if key not in part:
            return f"field {key} missing"
    n = len(part["set_index"])
    kp = part["keypoints"]
    if kp.ndim != 4 or kp.shape[0] != n or kp.shape[2:] != (17, 3) or (views is not None and kp.shape[1] != views):
        return f"field keypoints has shape {kp.shape}, expected [{n}, {views or 'V'}, 17, 3]"
    for key in part:
        if key != "camera_names" and part[key].shape[:1] != (n,):
            return f"field {key} has {part[key].shape[:1] or 'no'} rows, expected {n}"
    return None


def read_results(folder: str | Path, views: int | None = None, progress: Callable[[float], None] | None = None) -> Results:
    """All results of a session in set order: the chunks, and for a chunk that was never written
    (a crash, a full disk) the whole records of its log. Unreadable or inconsistent files are
    skipped, named in ``skipped`` and logged. ``progress``: called with the fraction of chunks read."""
    folder = Path(folder)
    files: dict[int, dict[str, Path]] = {}
    for path in (folder / "results").glob("chunk_*"):
        index = _chunk_index(path)
        if index is not None:
            files.setdefault(index, {})[path.suffix] = path
    parts: list[dict[str, np.ndarray]] = []
    result = Results({})
    for count, index in enumerate(sorted(files), start=1):
        part = _read_part(files[index], result)
        if progress is not None:
            progress(count / len(files))
        if views is None and part is not None and getattr(part.get("keypoints"), "ndim", 0) == 4:
            views = part["keypoints"].shape[1]
        reason = _check_part(part, views) if part is not None else None
        if reason is not None:
            result.skipped[files[index].get(".npz", files[index].get(".log", Path("?"))).name] = reason
        elif part is not None:
            parts.append(part)
    for name, reason in result.skipped.items():
        log.warning("recorded session %s: skipping results/%s (%s)", folder, name, reason)
    if parts:
        result.arrays = concat_rows(parts) | {"camera_names": next((p["camera_names"] for p in parts if "camera_names" in p),
                                                                  np.array([], str))}  # fmt: skip
        result.arrays = upgrade_results(result.arrays, f"recorded session {folder}")  # format-1 chunks: body_* names
    return result


def _read_part(paths: dict[str, Path], result: Results) -> dict[str, np.ndarray] | None:
    if ".npz" in paths:
        try:
            with np.load(paths[".npz"], allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            if ".log" not in paths:
                result.skipped[paths[".npz"].name] = f"unreadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                return None
    try:
        records, cut = read_log_records(paths[".log"].read_bytes())
    except OSError as exc:
        result.skipped[paths[".log"].name] = f"unreadable: {exc.strerror or exc}"
        return None
    if cut:
        log.info("results/%s: %d byte(s) after the last whole set (cut off)", paths[".log"].name, cut)
    if not records:
        if cut:
            result.skipped[paths[".log"].name] = "holds no whole frame-set"
        return None
    result.from_log += len(records)
    return concat_rows(records)


def load_results(folder: str | Path) -> dict[str, np.ndarray]:
    """All results of a session concatenated ({} when none; see :func:`read_results`)."""
    return read_results(folder).arrays


# --- privacy and events -----------------------------------------------------------------------------
def video_mode(meta: dict[str, object], where: str = "session.json") -> str:
    """What video a session kept: ``"all"``, ``"events"`` (clips around events) or ``"results"``
    (none); sessions older than the field: from ``store_video``."""
    mode = meta.get("video")
    if mode is None:
        return "results" if meta.get("store_video") is False else "all"
    if mode not in VIDEO_MODES:
        raise SessionError(f"recorded session file {where}: field video is {mode!r}, expected one of {', '.join(VIDEO_MODES)}")
    return str(mode)


def read_events(folder: str | Path) -> list[dict[str, object]]:
    """The session's events, one dict per line of ``events.jsonl`` in file order ([] for a session
    recorded before events were written). A last line cut short by a crash is left out (logged);
    any other line that is not a JSON object, or whose format_version is newer than this version
    reads, is a SessionError naming the file and the line."""
    path = Path(folder) / EVENTS_NAME
    if not path.is_file():
        log.info("recorded session %s: no %s (recorded before events were kept)", folder, EVENTS_NAME)
        return []
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SessionError(f"recorded session file {path}: unreadable ({exc.strerror or exc})") from exc
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a whole line
    events = [_event(path, number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if torn.strip():
        try:
            events.append(_event(path, len(lines) + 1, torn))
        except SessionError as exc:
            log.warning("%s (the last line, cut short when the recording stopped; left out)", exc)
    return events


def _event(path: Path, number: int, line: bytes) -> dict[str, object]:
    where = f"recorded session file {path}, line {number}"
    try:
        record = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SessionError(f"{where}: not a JSON object ({exc})") from None
    if not isinstance(record, dict):
        raise SessionError(f"{where}: holds a {type(record).__name__}, expected a JSON object")
    version = record.get("format_version", EVENT_FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= EVENT_FORMAT_VERSION:
        raise SessionError(f"{where}: format_version is {version!r}; this version reads 1 to {EVENT_FORMAT_VERSION}")
    return record
