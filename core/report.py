"""Shared ending of the benchmark scripts: run, print the JSON result, write it if asked."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.errors import AppError


def run_and_report(measure: Callable[[], dict[str, object]], json_path: Path | None) -> int:
    """Call ``measure``; print its result as JSON (and write it to ``json_path``). A user error
    prints one ``error:`` line and returns 2."""
    try:
        result = measure()
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n")
    print(text)
    return 0


def time_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median and 95th-percentile wall time of ``fn()`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": round(float(np.median(samples)), 3), "p95_ms": round(float(np.percentile(samples, 95)), 3)}
