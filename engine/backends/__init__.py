"""Inference backends for HeatFormer-S: one interface (engine.backends.base), a registry, and
automatic selection.

    runner = HeatFormerRunner.create("auto", model, weights)   # or "torch", "onnxruntime", "tensorrt"
    final = runner(inputs)                                      # ViewInputs -> output arrays

``auto`` picks TensorRT on an NVIDIA GPU when it is installed, else ONNX Runtime with CUDA, else
PyTorch CUDA, else the faster of ONNX Runtime CPU and PyTorch CPU (measured on the spot; ONNX
Runtime when the call's CPU threads are limited, as only its threads can be); the
choice and the reason are logged and kept in ``runner.reason``. A missing or broken GPU stack
falls back with one log line, never a crash.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from engine.backends.base import Backend, BackendError, input_names, output_names
from engine.heatformer.inputs import ViewInputs
from engine.heatformer.model import Estimate, HeatFormer
from engine.heatformer.tta import applies, augmented_average

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")


def cuda_available() -> bool:
    try:
        return bool(torch.cuda.is_available())
    except Exception:
        return False


def runner_or_model(name: str, model: HeatFormer, model_id: str, notify: Callable[[str], None] | None = None,
                    threads: int | None = None) -> HeatFormerRunner | None:  # fmt: skip
    """What runs HeatFormer for backend ``name``: None where the PyTorch model itself does
    ("torch" without a GPU: the app's and the evaluator's callers then run ``model`` as it is), else
    :meth:`HeatFormerRunner.create`'s runner ("torch" with a GPU: a copy of the model on CUDA)."""
    if name == "torch" and not cuda_available():
        return None
    return HeatFormerRunner.create(name, model, model_id, notify, threads)


def make_backend(name: str, model: HeatFormer, model_id: str, calibrated: bool, device: str = "cpu",
                 fp16: bool = False, threads: int | None = None, iterations: int | None = None) -> Backend:  # fmt: skip
    """One backend by name for one mode (calibrated or not) and number of ``iterations`` (default:
    the model's); ``threads``: ONNX Runtime's CPU threads for one call (None: its default, every core)."""
    iterations = _fewer(model, iterations)
    if name == "torch":
        from engine.backends.torch_backend import TorchBackend

        return TorchBackend(model, calibrated, device, fp16, iterations)
    if name in ("onnxruntime", "tensorrt"):
        from engine.backends.artifact import onnx_artifact

        path = onnx_artifact(model, model_id, calibrated, iterations=iterations)
        if name == "onnxruntime":
            from engine.backends.ort_backend import OrtBackend

            return OrtBackend(path, calibrated, device, threads)
        from engine.backends.trt_backend import TensorRTBackend

        return TensorRTBackend(path, calibrated, iterations=iterations)
    raise BackendError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")


def _fewer(model: HeatFormer, iterations: int | None) -> int | None:
    """``iterations`` where they are fewer than the model's, else None (the whole model)."""
    return None if iterations == model.cfg.iterations else iterations


def feed_of(inputs: ViewInputs) -> dict[str, np.ndarray]:
    values = {"obs_xy": inputs.obs_xy, "obs_conf": inputs.obs_conf, "K_crop": inputs.K_crop,
              "root_cam": inputs.root_cam, "R": inputs.R}  # fmt: skip
    return {n: _numpy(n, values[n]) for n in input_names(inputs.calibrated)}


def _numpy(name: str, value: torch.Tensor | None) -> np.ndarray:
    if value is None:
        raise BackendError(f"model input {name} is missing (calibrated inputs need K_crop, root_cam and R)")
    return value.detach().cpu().numpy()


def sample_feed(calibrated: bool, views: int = 4, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Plausible inputs (a body-sized spread of keypoints in the crop) for checks and timing."""
    rng = np.random.default_rng(seed)
    feed = {
        "obs_xy": (0.2 + 0.6 * rng.random((batch, views, 17, 2))).astype(np.float32),
        "obs_conf": rng.uniform(0.3, 1.0, (batch, views, 17)).astype(np.float32),
    }
    if calibrated:
        K = np.array([[1.4, 0.0, 0.5], [0.0, 1.4, 0.5], [0.0, 0.0, 1.0]], np.float32)
        feed["K_crop"] = np.broadcast_to(K, (batch, views, 3, 3)).copy()
        feed["root_cam"] = (np.array([0.0, 0.0, 3.0]) + 0.2 * rng.standard_normal((batch, views, 3))).astype(np.float32)
        angles = rng.uniform(-np.pi, np.pi, (batch, views))
        R = np.zeros((batch, views, 3, 3), np.float32)
        R[..., 0, 0], R[..., 0, 2], R[..., 1, 1] = np.cos(angles), np.sin(angles), 1.0
        R[..., 2, 0], R[..., 2, 2] = -np.sin(angles), np.cos(angles)
        feed["R"] = R
    return feed


def _median_ms(backend: Backend, feed: dict[str, np.ndarray], repeats: int = 7) -> float:
    backend.infer(feed)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend.infer(feed)
        samples.append((time.perf_counter() - start) * 1000)
    return float(np.median(samples))


class HeatFormerRunner:
    """HeatFormer on a chosen backend, one backend instance per mode (made on first use).
    ``threads``: ONNX Runtime's CPU threads per call (None: every core; see :meth:`create`)."""

    def __init__(self, name: str, model: HeatFormer, model_id: str, device: str = "cpu", fp16: bool = False,
                 reason: str = "", threads: int | None = None) -> None:  # fmt: skip
        self.name, self.model, self.model_id, self.device, self.fp16 = name, model, model_id, device, fp16
        self.threads = threads
        self.reason = reason or f"{name} requested"
        self._backends: dict[tuple[bool, int | None], Backend] = {}

    @classmethod
    def create(cls, name: str, model: HeatFormer, model_id: str, notify: Callable[[str], None] | None = None,
               threads: int | None = None) -> HeatFormerRunner:  # fmt: skip
        """``name``: auto, torch, onnxruntime or tensorrt (on CUDA when there is a GPU).
        ``threads``: ONNX Runtime's CPU threads per call; 1 where the call shares the cores with
        other work (the app's pipeline detects the next frame-set meanwhile), since its idle
        threads otherwise spin on cores the detector needs."""
        if name not in BACKENDS:
            raise BackendError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")
        gpu = cuda_available()
        if name != "auto":
            if name == "tensorrt":
                device = "cuda"
            elif name == "onnxruntime":
                device = "cuda" if gpu and _ort_has_cuda() else "cpu"
            else:
                device = "cuda" if gpu else "cpu"
            runner = cls(name, model, model_id, device, threads=threads)
            runner.backend(True)  # fail now, with the reason, rather than on the first frame
            return runner
        runner, reason = _auto(model, model_id, gpu, threads)
        runner.reason = f"auto: {reason}"
        message = f"inference backend: {runner.name} on {runner.device} ({reason})"
        log.info("%s", message)
        if notify:
            notify(message)
        return runner

    def backend(self, calibrated: bool, iterations: int | None = None) -> Backend:
        """The backend for one mode and number of iterations (None: the model's), made on first use."""
        key = (calibrated, _fewer(self.model, iterations))
        if key not in self._backends:
            self._backends[key] = make_backend(self.name, self.model, self.model_id, calibrated, self.device, self.fp16,
                                               self.threads, key[1])  # fmt: skip
        return self._backends[key]

    def __call__(self, inputs: ViewInputs, iterations: int | None = None) -> dict[str, np.ndarray]:
        """The outputs of the estimate after ``iterations`` (default: the model's, all of them);
        a single uncalibrated view is averaged over test-time augmentations (engine.heatformer.tta),
        as the PyTorch model's inference is."""
        backend = self.backend(inputs.calibrated, iterations)
        rows = inputs.obs_xy.shape[0]
        if self.name == "tensorrt" and rows > 1:  # its engine's profile is batch 1: one row at a time
            outs = [self(inputs.rows(slice(i, i + 1)), iterations) for i in range(rows)]
            return {n: np.concatenate([o[n] for o in outs]) for n in outs[0]}
        if not applies(inputs):
            return backend.infer(feed_of(inputs))

        def run(x: ViewInputs) -> list[Estimate]:
            out = backend.infer(feed_of(x))
            return [Estimate(*(torch.from_numpy(out[n]) for n in output_names()))]

        final = augmented_average(run, inputs, batched=self.name != "tensorrt")[-1]  # the TensorRT profile is batch 1
        return {n: getattr(final, n).numpy() for n in output_names()}

    def describe(self) -> str:
        return f"{self.name} ({self.device}) — {self.reason}"


def _ort_has_cuda() -> bool:
    try:
        import onnxruntime as ort

        return "CUDAExecutionProvider" in ort.get_available_providers()
    except Exception:
        return False


def _auto(model: HeatFormer, model_id: str, gpu: bool, threads: int | None = None) -> tuple[HeatFormerRunner, str]:
    """TensorRT, else ONNX Runtime on CUDA, where there is a GPU; else the fastest of PyTorch on
    CUDA (where there is a GPU) and the CPU runtimes for one 4-view frame-set, measured here. With
    ``threads`` (the pipeline's share of the CPU), ONNX Runtime wherever it is at least as fast as
    PyTorch on CUDA: only its threads can be held to that share."""
    timings: dict[str, float] = {}
    runners: dict[str, HeatFormerRunner] = {}
    feed = sample_feed(True)
    if gpu:
        for name in ("tensorrt", "onnxruntime"):
            if name == "onnxruntime" and not _ort_has_cuda():
                log.warning("backend auto: onnxruntime has no CUDA provider (install onnxruntime-gpu); trying the next")
                continue
            runner = HeatFormerRunner(name, model, model_id, "cuda")
            try:
                runner.backend(True)
            except BackendError as exc:
                log.warning("backend auto: %s unavailable, falling back: %s", name, exc)
                continue
            return runner, f"NVIDIA GPU present; {name} is the fastest available there"
        # PyTorch on CUDA is not taken unmeasured: one frame-set at a time, its many small kernels
        # set the time (on an H200, 14.6 ms for 4 views, against 2.3-2.5 ms for ONNX Runtime on one
        # CPU thread of the 2-core machine), so it competes with the CPU runtimes below.
        runner = HeatFormerRunner("torch", model, model_id, "cuda", fp16=True)
        try:
            timings[CUDA_TORCH] = _median_ms(runner.backend(True), feed)
            runners[CUDA_TORCH] = runner
        except BackendError as exc:
            log.warning("backend auto: torch unavailable on CUDA, falling back: %s", exc)
    for name in ("onnxruntime", "torch"):
        runner = HeatFormerRunner(name, model, model_id, "cpu", threads=threads)
        try:
            timings[name] = _median_ms(runner.backend(True), feed)
            runners[name] = runner
        except BackendError as exc:
            log.warning("backend auto: %s unavailable on CPU: %s", name, exc)
    if not runners:
        raise BackendError("no inference backend works on this machine (torch and onnxruntime both failed)")
    measured = ", ".join(f"{n} {t:.1f} ms" for n, t in sorted(timings.items(), key=lambda kv: kv[1]))
    where = "NVIDIA GPU present without TensorRT or onnxruntime-gpu" if gpu else "no NVIDIA GPU"
    if threads is not None and "onnxruntime" in runners and timings["onnxruntime"] <= timings.get(CUDA_TORCH, math.inf):
        reason = f"{where}; onnxruntime on {threads} CPU thread(s), beside other work (4 views: {measured})"
        return runners["onnxruntime"], reason
    best = min(timings, key=timings.__getitem__)
    return runners[best], f"{where}; fastest here for 4 views: {measured}"


CUDA_TORCH = "torch (cuda)"  # auto's name for PyTorch on the GPU among its measured candidates
