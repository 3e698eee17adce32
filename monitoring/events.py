"""``events.jsonl``: one JSON object a line, appended and flushed line by line (a crash loses nothing
written before it), read back tolerating a torn last line."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from core.types import EVENT_FORMAT_VERSION, Event
from monitoring.config import MonitorError

log = logging.getLogger(__name__)


class EventLog:
    """Appends events to ``path`` (created with its folder); each line is flushed to the OS at once,
    and with ``sync`` also to the disk (fsync) so that a power cut keeps it too."""

    def __init__(self, path: str | Path, sync: bool = False) -> None:
        self.path = Path(path)
        self.sync = sync
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise MonitorError(f"events file {self.path}: cannot be written ({exc.strerror or exc})") from None
        self.written = 0

    def write(self, event: Event | dict[str, object]) -> None:
        record = event.to_record() if isinstance(event, Event) else event
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=_plain) + "\n"
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line)
            self._file.flush()
            if self.sync:
                os.fsync(self._file.fileno())
            self.written += 1

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()


def read_events(path: str | Path) -> list[dict[str, object]]:
    """The records of an events file; a torn last line (a crash mid-write) is left out with a warning,
    a malformed line before it is an error naming the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise MonitorError(f"events file {path}: cannot be read ({exc.strerror or exc})") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            if number == len(lines):
                log.warning("events file %s: the last line is incomplete (a crash while writing?); left out", path)
                break
            raise MonitorError(f"events file {path}: line {number} is not a JSON object ({exc})") from None
        version = record.get("format_version")
        if version != EVENT_FORMAT_VERSION:
            raise MonitorError(
                f"events file {path}: line {number} has format_version {version!r}; this version reads {EVENT_FORMAT_VERSION}"
            )
        records.append(record)
    return records


def _plain(value: object) -> object:
    """numpy numbers and arrays as JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
