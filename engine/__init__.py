"""Detection, body estimation and the processing pipeline (no Qt)."""
