"""Domain exceptions: each carries the file, camera or field it is about.

Every user mistake (a missing file, a bad calibration, an unknown source) raises an
``AppError`` subclass whose message is one clear line; ``main.py`` prints it and exits
non-zero, and the GUI shows it in the status area.
"""

from __future__ import annotations


class AppError(Exception):
    """Base class of all errors caused by bad input or configuration."""


class SourceError(AppError):
    """A camera source or video file cannot be opened or read."""


class CalibrationError(AppError):
    """A calibration file is missing, malformed or inconsistent with the cameras."""


class DetectorError(AppError):
    """A 2D detector cannot be created or run."""
