"""HeatFormer-S latency for one frame-set (PyTorch and ONNX Runtime) and the refinement after it,
for the benchmarks."""

from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
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


def measure(model: HeatFormer, views: int = 4, repeats: int = 50, iterations: int | None = None) -> dict[str, object]:
    """Median / p95 ms of one calibrated frame-set with ``views`` views, after ``iterations``
    (default: all)."""
    model = model.eval()
    inputs = _inputs(views)
    count = model.cfg.iterations if iterations is None else iterations
    result: dict[str, object] = {"views": views, "iterations": count, "torch_threads": torch.get_num_threads()}
    with torch.no_grad():
        result["pytorch"] = time_ms(lambda: model(inputs, count), repeats, warmup=5)
    try:
        import onnxruntime as ort
    except ImportError:
        return result
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "heatformer.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(model, path, calibrated=True, iterations=count)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {"obs_xy": inputs.obs_xy.numpy(), "obs_conf": inputs.obs_conf.numpy()}
        assert inputs.K_crop is not None and inputs.root_cam is not None and inputs.R is not None  # calibrated inputs
        feed |= {"K_crop": inputs.K_crop.numpy(), "root_cam": inputs.root_cam.numpy(), "R": inputs.R.numpy()}
        result["onnxruntime"] = time_ms(lambda: session.run(None, feed), repeats, warmup=5)
    return result


def measure_refine(model: HeatFormer, views: int = 4, repeats: int = 30) -> dict[str, object]:
    """Median / p95 ms of the refinement of one person seen by ``views`` calibrated cameras,
    starting from a body whose arms are off (engine.heatformer.refine, default settings)."""
    from core.camera import looking_at
    from engine.heatformer.refine import DEFAULT, exp_so3, fit_body, float64_body, refine_world

    body = fit_body(model.body)  # the body the app fits, in the fit's precision
    g = torch.Generator().manual_seed(0)
    cams = [
        looking_at(f"c{i}", (3.0 * math.cos(a), 3.0 * math.sin(a), 1.5))
        for i, a in enumerate(torch.linspace(0, 6.0, views).tolist())
    ]
    K, R, t = (torch.as_tensor(np.stack([getattr(c, name) for c in cams]))[None] for name in ("K", "R", "t"))
    rot = exp_so3(0.3 * torch.randn(1, 24, 3, generator=g, dtype=torch.float64))
    rot[:, 0] = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    betas, transl = torch.zeros(1, 10, dtype=torch.float64), torch.tensor([[0.0, 0.0, 0.9]], dtype=torch.float64)
    with torch.no_grad():
        keypoints = float64_body(model.body).joints_rotmat(betas, rot).keypoints
    assert keypoints is not None
    kp = keypoints + transl[:, None]
    uvw = torch.einsum("nvij,nvkj->nvki", K, torch.einsum("nvij,nkj->nvki", R, kp) + t[:, :, None])
    pixels, conf = uvw[..., :2] / uvw[..., 2:3], torch.full((1, views, 17), 0.9, dtype=torch.float64)
    start = rot.clone()
    start[:, 16:22] = start[:, 16:22] @ exp_so3(0.4 * torch.randn(1, 6, 3, generator=g, dtype=torch.float64))
    timing = time_ms(lambda: refine_world(body, start, betas, transl, pixels, conf, K, R, t), repeats, warmup=3)
    return {"views": views, "iterations": DEFAULT.iterations, "torch_threads": torch.get_num_threads(), **timing}
