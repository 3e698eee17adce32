"""What inference backends this machine has, and a short self-test of each.

    python -m engine.backends --check [--weights FILE] [--json FILE]

For torch, onnxruntime and tensorrt: installed or not (and why), devices and providers, and for
each usable one the largest difference from the PyTorch reference on a 4-view sample (calibrated
and uncalibrated) and its median latency. Exit code 0 when at least one backend works.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np

from core.outputs import check_output
from core.report import run_and_report
from engine.backends import BACKENDS, HeatFormerRunner, cuda_available, sample_feed
from engine.backends.base import BackendError, model_hash


def installed() -> dict[str, object]:
    info: dict[str, object] = {"python": platform.python_version(), "cuda_gpu": cuda_available()}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception as exc:
        info["torch"] = f"unusable: {exc}"
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
        info["onnxruntime_providers"] = ort.get_available_providers()
    except Exception as exc:
        info["onnxruntime"] = f"not installed ({type(exc).__name__})"
    for module in ("tensorrt", "pycuda"):
        try:
            imported = __import__(module)
            info[module] = getattr(imported, "__version__", "installed")
        except Exception as exc:
            info[module] = f"not installed ({type(exc).__name__}: {exc})"
    return info


def check(weights: Path | None) -> dict[str, object]:
    from engine.heatformer.runtime import DEFAULT_WEIGHTS, load_heatformer

    path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    model = load_heatformer(path)
    model_id = model_hash(path)
    self_test: dict[str, object] = {}
    report: dict[str, object] = {"installed": installed(), "model": str(path), "model_hash": model_id, "self_test": self_test}
    reference = HeatFormerRunner("torch", model, model_id, "cpu")
    feeds = {mode: sample_feed(mode == "calibrated") for mode in ("calibrated", "uncalibrated")}
    expected = {mode: reference.backend(mode == "calibrated").infer(feed) for mode, feed in feeds.items()}
    working = 0
    for name in BACKENDS[1:]:
        print(f"self-test: {name}", file=sys.stderr, flush=True)
        try:
            runner = HeatFormerRunner.create(name, model, model_id)
            result: dict[str, object] = {"device": runner.device}
            for mode, feed in feeds.items():
                backend = runner.backend(mode == "calibrated")
                out = backend.infer(feed)
                result[f"max_abs_diff_{mode}"] = float(max(np.abs(out[k] - expected[mode][k]).max() for k in out))
            import time

            samples = []
            for _ in range(10):
                start = time.perf_counter()
                runner.backend(True).infer(feeds["calibrated"])
                samples.append((time.perf_counter() - start) * 1000)
            result["median_ms_4_views"] = round(float(np.median(samples)), 2)
            result["ok"] = True
            working += 1
        except BackendError as exc:
            result = {"ok": False, "reason": str(exc)}
        self_test[name] = result
    if not working:
        raise BackendError("no backend works on this machine")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.backends", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--check", action="store_true", help="list what is installed and self-test every backend")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not args.check:
        parser.print_help()
        return 0

    def checked() -> dict[str, object]:
        if args.json is not None:  # before the work: a bad path fails at once
            check_output(args.json, "--json", create_folder=True)
        return check(args.weights)

    return run_and_report(checked, args.json)


if __name__ == "__main__":
    sys.exit(main())
