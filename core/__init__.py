"""Core types and errors shared by every package (no Qt, no heavy imports)."""
