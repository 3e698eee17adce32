"""Body model speed on this machine (CPU): full forward and the joints-only path.

python -m engine.body.benchmark [--model FILE] [--repeats 50] [--json out/body_bench.json]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from core.report import run_and_report
from engine.body.model import BodyModel


def time_call(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": round(float(np.median(samples)), 3), "p95_ms": round(float(np.percentile(samples, 95)), 3)}


def run(model: BodyModel, repeats: int) -> dict[str, object]:
    results: dict[str, object] = {}
    g = torch.Generator().manual_seed(0)
    for batch in (1, 64):
        args = (
            torch.randn(batch, 10, generator=g),
            torch.randn(batch, 3, generator=g),
            0.3 * torch.randn(batch, 69, generator=g),
        )
        with torch.no_grad():
            results[f"forward_batch{batch}"] = time_call(functools.partial(model, *args), repeats)
            results[f"joints_only_batch{batch}"] = time_call(functools.partial(model.joints_only, *args), repeats)
    return {
        "results": results,
        "vertices": int(model.v_template.shape[0]),
        "torch_threads": torch.get_num_threads(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.body.benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="body model file (default: the bundled body)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    return run_and_report(lambda: run(BodyModel.from_file(args.model), args.repeats), args.json)


if __name__ == "__main__":
    sys.exit(main())
