"""Warnings for the status area: a logging handler that keeps the product's recent warnings
(a calibration adjusted to the video size, videos of different lengths, damaged frames skipped)
so that the window shows them instead of leaving them on a terminal nobody reads."""

from __future__ import annotations

import logging
import threading
from collections import deque

PACKAGES = ("capture", "calibration", "core", "engine", "recording")


class Notices(logging.Handler):
    """Collects WARNING and above from our packages (any thread); newest last, at most ``keep``."""

    def __init__(self, keep: int = 20) -> None:
        super().__init__(logging.WARNING)
        self._items: deque[str] = deque(maxlen=keep)
        self._lock_items = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] not in PACKAGES:
            return
        with self._lock_items:
            self._items.append(record.getMessage())

    def items(self) -> list[str]:
        with self._lock_items:
            return list(self._items)

    def attach(self) -> Notices:
        logging.getLogger().addHandler(self)
        return self

    def detach(self) -> None:
        logging.getLogger().removeHandler(self)
