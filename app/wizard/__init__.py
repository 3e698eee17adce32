"""The room calibration wizard (pages, views, and the worker thread that reads, detects and solves)."""

from app.wizard.wizard import CalibrationWizard

__all__ = ["CalibrationWizard"]
