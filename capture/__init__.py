"""Camera sources and frame synchronization (no Qt)."""
