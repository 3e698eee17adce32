"""Export HeatFormer-S (all iterations, any number of views) to one ONNX graph."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import torch
from torch import Tensor, nn

from engine.heatformer.inputs import ViewInputs
from engine.heatformer.model import Estimate, HeatFormer

OUTPUTS = [f.name for f in fields(Estimate)]  # the final estimate, field by field (backends rebuild it in this order)


class _Calibrated(nn.Module):
    def __init__(self, model: HeatFormer, iterations: int | None = None) -> None:
        super().__init__()
        self.model, self.iterations = model, iterations

    def forward(self, obs_xy: Tensor, obs_conf: Tensor, K_crop: Tensor, root_cam: Tensor, R: Tensor) -> tuple[Tensor, ...]:
        boxes = torch.zeros(obs_xy.shape[0], obs_xy.shape[1], 3)
        return _final(self.model(ViewInputs(obs_xy, obs_conf, boxes, K_crop, root_cam, R), self.iterations))


class _Uncalibrated(nn.Module):
    def __init__(self, model: HeatFormer, iterations: int | None = None) -> None:
        super().__init__()
        self.model, self.iterations = model, iterations

    def forward(self, obs_xy: Tensor, obs_conf: Tensor) -> tuple[Tensor, ...]:
        boxes = torch.zeros(obs_xy.shape[0], obs_xy.shape[1], 3)
        return _final(self.model(ViewInputs(obs_xy, obs_conf, boxes), self.iterations))


def _final(states: list[Estimate]) -> tuple[Tensor, ...]:
    s = states[-1]
    values = tuple(getattr(s, name) for name in OUTPUTS)
    assert all(v is not None for v in values)  # every field is set after an iteration
    return values


def export_onnx(model: HeatFormer, path: Path, calibrated: bool, views: int = 2, iterations: int | None = None) -> None:
    """Write the final estimate of ``model`` (eval mode) after ``iterations`` (default: its
    config's) as ONNX with dynamic batch and views."""
    model = model.eval()
    xy, conf = torch.rand(1, views, 17, 2), torch.rand(1, views, 17)
    names = ["obs_xy", "obs_conf"]
    args: tuple[Tensor, ...] = (xy, conf)
    wrapper: nn.Module = _Uncalibrated(model, iterations)
    if calibrated:
        K = torch.eye(3).repeat(1, views, 1, 1)
        args = (xy, conf, K, torch.tensor([0.0, 0.0, 3.0]).repeat(1, views, 1), K.clone())
        names += ["K_crop", "root_cam", "R"]
        wrapper = _Calibrated(model, iterations)
    dynamic = {n: {0: "batch", 1: "views"} for n in names + OUTPUTS}
    with torch.no_grad():
        torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=OUTPUTS, dynamic_axes=dynamic,
                          opset_version=17, dynamo=False)  # fmt: skip
