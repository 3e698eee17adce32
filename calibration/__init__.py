"""Camera models, calibration files and multi-view geometry (no Qt)."""
