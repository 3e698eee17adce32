"""Shared ending of the benchmark and evaluation scripts: run, write the JSON result if asked,
print it or its summary."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import AppError


def run_and_report(
    measure: Callable[[], dict[str, Any]],
    json_path: Path | None,
    summary: Callable[[dict[str, Any]], str] | None = None,
) -> int:
    """Call ``measure``; write its result as JSON to ``json_path`` when given, and print it (or,
    with a file and a ``summary``, only ``summary(result)``: the whole JSON is in the file). A user
    error prints one ``error:`` line and returns 2."""
    try:
        result = measure()
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    if json_path is not None:
        try:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(text + "\n")
        except OSError as exc:  # found after the work: the result is printed, not lost
            print(text)
            print(f"error: --json {json_path}: cannot write ({exc.strerror or exc})", file=sys.stderr)
            return 2
        if summary is not None:
            print(summary(result))
            print(f"wrote {json_path}")
            return 0
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
