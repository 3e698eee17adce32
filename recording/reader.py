"""Read a recorded session's results back: the chunks, and the log of the chunk being gathered
when the recording was cut short. An unreadable chunk is skipped and named
(:attr:`Results.skipped`), never fatal on its own. The session's frames replay through
capture.recorded.
"""

from __future__ import annotations

import logging
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recording.writer import concat_rows, read_log_records

log = logging.getLogger(__name__)


# --- results ----------------------------------------------------------------------------------------
@dataclass
class Results:
    """A session's results joined in set order (see recording.writer.row_arrays for the arrays),
    and what could not be read: ``skipped`` maps a file name to the reason."""

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


def read_results(folder: str | Path, views: int | None = None) -> Results:
    """All results of a session in set order: the chunks, and for a chunk that was never written
    (a crash, a full disk) the whole records of its log. Unreadable or inconsistent files are
    skipped, named in ``skipped`` and logged."""
    folder = Path(folder)
    files: dict[int, dict[str, Path]] = {}
    for path in (folder / "results").glob("chunk_*"):
        index = _chunk_index(path)
        if index is not None:
            files.setdefault(index, {})[path.suffix] = path
    parts: list[dict[str, np.ndarray]] = []
    result = Results({})
    for index in sorted(files):
        part = _read_part(files[index], result)
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
