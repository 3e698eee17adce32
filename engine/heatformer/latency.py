"""HeatFormer-S latency for one frame-set (PyTorch and ONNX Runtime), for the benchmarks."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import torch

from core.report import time_ms
from engine.heatformer.export import export_onnx
from engine.heatformer.inputs import ViewInputs
from engine.heatformer.model import HeatFormer


def _inputs(views: int) -> ViewInputs:
    g = torch.Generator().manual_seed(0)
    xy = 0.2 + 0.6 * torch.rand(1, views, 17, 2, generator=g)
    K = torch.tensor([[1.4, 0.0, 0.5], [0.0, 1.4, 0.5], [0.0, 0.0, 1.0]]).repeat(1, views, 1, 1)
    root = torch.tensor([0.0, 0.0, 3.0]).repeat(1, views, 1)
    return ViewInputs(xy, torch.ones(1, views, 17), torch.zeros(1, views, 3), K, root, torch.eye(3).repeat(1, views, 1, 1))


def measure(model: HeatFormer, views: int = 4, repeats: int = 50) -> dict[str, object]:
    """Median / p95 ms of one calibrated frame-set with ``views`` views, all iterations."""
    model = model.eval()
    inputs = _inputs(views)
    result: dict[str, object] = {"views": views, "iterations": model.cfg.iterations, "torch_threads": torch.get_num_threads()}
    with torch.no_grad():
        result["pytorch"] = time_ms(lambda: model(inputs), repeats, warmup=5)
    try:
        import onnxruntime as ort
    except ImportError:
        return result
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "heatformer.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(model, path, calibrated=True)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {"obs_xy": inputs.obs_xy.numpy(), "obs_conf": inputs.obs_conf.numpy()}
        assert inputs.K_crop is not None and inputs.root_cam is not None and inputs.R is not None  # calibrated inputs
        feed |= {"K_crop": inputs.K_crop.numpy(), "root_cam": inputs.root_cam.numpy(), "R": inputs.R.numpy()}
        result["onnxruntime"] = time_ms(lambda: session.run(None, feed), repeats, warmup=5)
    return result
