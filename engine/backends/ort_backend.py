"""ONNX Runtime backend: CPU, or CUDA / TensorRT execution providers with onnxruntime-gpu."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.backends.base import BackendError, Capabilities, check_feed, output_names


class OrtBackend:
    name = "onnxruntime"

    def __init__(self, onnx_path: Path, calibrated: bool, device: str = "cpu", threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError("onnxruntime backend: onnxruntime is not installed") from exc
        available = ort.get_available_providers()
        if device == "cuda":
            if "CUDAExecutionProvider" not in available:
                raise BackendError(f"onnxruntime backend: no CUDA execution provider (available: {', '.join(available)})")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types
            raise BackendError(f"onnxruntime backend: cannot load {onnx_path} ({exc})") from exc
        self.calibrated = calibrated
        self.providers = self.session.get_providers()
        self.capabilities = Capabilities(device, "fp32", dynamic_views=True)

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(list(output_names()), check_feed(feed, self.calibrated))
        return dict(zip(output_names(), outputs, strict=True))
