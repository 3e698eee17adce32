"""PyTorch backend: the model itself, on CPU or CUDA (FP16 on CUDA when asked)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from engine.backends.base import BackendError, Capabilities, check_feed, input_names, output_names
from engine.heatformer.export import _Calibrated, _Uncalibrated
from engine.heatformer.model import HeatFormer


class TorchBackend:
    name = "torch"

    def __init__(self, model: HeatFormer, calibrated: bool, device: str = "cpu", fp16: bool = False,
                 iterations: int | None = None) -> None:  # fmt: skip
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendError("torch backend: CUDA requested but no CUDA device is available")
        if fp16 and device != "cuda":
            raise BackendError("torch backend: FP16 needs CUDA")
        self.calibrated, self.device = calibrated, torch.device(device)
        if self.device.type != "cpu":  # FP16 too: it needs CUDA (above)
            # .to() and .half() change a module in place: the caller's model (and the body model in it,
            # which the refinement and the meshes use on the CPU) must stay as it is.
            model = copy.deepcopy(model)
        wrapper = (_Calibrated if calibrated else _Uncalibrated)(model.eval(), iterations)
        self.module = wrapper.to(self.device)
        self.dtype = torch.float16 if fp16 else torch.float32
        if fp16:
            self.module = self.module.half()
        self.capabilities = Capabilities(device, "fp16" if fp16 else "fp32", dynamic_views=True)

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = check_feed(feed, self.calibrated)
        args = [torch.from_numpy(feed[n]).to(self.device, self.dtype) for n in input_names(self.calibrated)]
        with torch.no_grad():
            outputs = self.module(*args)
        return {n: o.float().cpu().numpy() for n, o in zip(output_names(), outputs, strict=True)}
