"""Body model speed on this machine (CPU): full forward and the joints-only path.

python -m engine.body.benchmark [--model FILE] [--repeats 50] [--json out/body_bench.json]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
from pathlib import Path

import torch

from core.report import run_and_report, time_ms
from engine.body.model import BodyModel


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
            results[f"forward_batch{batch}"] = time_ms(functools.partial(model, *args), repeats)
            results[f"joints_only_batch{batch}"] = time_ms(functools.partial(model.joints_only, *args), repeats)
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
