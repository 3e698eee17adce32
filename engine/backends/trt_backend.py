"""TensorRT backend: an engine built from the ONNX artifact with the TensorRT Python API (10.x:
named I/O tensors, ``build_serialized_network``, ``execute_async_v3``), FP16, one optimisation
profile covering 1..8 views, cached on disk by model hash + TensorRT version + GPU name, and run
with pycuda (page-locked host buffers, device buffers, one stream, async copies).

``tensorrt`` and ``pycuda`` are imported only here, only when this backend is asked for.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from engine.backends.artifact import artifact_metadata
from engine.backends.base import MAX_VIEWS, MIN_VIEWS, BackendError, Capabilities, cache_dir, check_feed, output_names

log = logging.getLogger(__name__)
OPT_VIEWS = 4
WORKSPACE_BYTES = 1 << 30


def _import() -> tuple[ModuleType, ModuleType]:
    """The ``tensorrt`` and ``pycuda.driver`` modules (neither ships type stubs)."""
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or a broken install raising anything
        raise BackendError(f"tensorrt backend: TensorRT is not usable ({type(exc).__name__}: {exc})") from exc
    try:
        import pycuda.driver as cuda
    except Exception as exc:
        raise BackendError(f"tensorrt backend: pycuda is not usable ({type(exc).__name__}: {exc})") from exc
    return trt, cuda


def engine_path(model_hash: str, calibrated: bool, trt_version: str, gpu_name: str, folder: Path | None = None,
                iterations: int | None = None) -> Path:  # fmt: skip
    """The cache file of an engine: rebuilt only when the model, TensorRT or the GPU changes.
    ``iterations``: those of a graph with fewer than the model's (None: the whole model)."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-")
    mode = "calibrated" if calibrated else "uncalibrated"
    fewer = "" if iterations is None else f"_{iterations}it"
    return (folder or cache_dir()) / f"heatformer_{model_hash}_{mode}{fewer}_trt{trt_version}_{gpu}_fp16.engine"


def build_engine(onnx_path: Path, calibrated: bool, trt: ModuleType, out: Path) -> bytes:
    """Parse the ONNX graph and build a serialized FP16 engine with a 1..8-view profile."""
    t = trt
    logger = t.Logger(t.Logger.WARNING)
    builder = t.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = t.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"tensorrt backend: cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(t.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if builder.platform_has_fast_fp16:
        config.set_flag(t.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        tail = tuple(tensor.shape)[2:]  # [batch, views, ...]
        profile.set_shape(tensor.name, (1, MIN_VIEWS, *tail), (1, OPT_VIEWS, *tail), (1, MAX_VIEWS, *tail))
    config.add_optimization_profile(profile)
    log.warning("building the TensorRT engine (once per model, TensorRT version and GPU; this takes a while)...")
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError("tensorrt backend: the engine build failed (see the TensorRT log above)")
    data = bytes(serialized)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    log.warning("TensorRT engine built in %.0f s: %s", time.perf_counter() - start, out)
    return data


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, onnx_path: Path, calibrated: bool, device_index: int = 0, iterations: int | None = None) -> None:
        trt, cuda = _import()
        self.trt, self.cuda = trt, cuda
        meta = artifact_metadata(onnx_path)
        if meta.get("calibrated") not in (None, "true" if calibrated else "false"):
            raise BackendError(
                f"tensorrt backend: {onnx_path.name} is not the {'calibrated' if calibrated else 'uncalibrated'} model"
            )
        try:
            cuda.init()
            device = cuda.Device(device_index)
            self.context_cuda = device.make_context()
        except Exception as exc:
            raise BackendError(f"tensorrt backend: no usable CUDA device ({exc})") from exc
        try:
            gpu = device.name()
            path = engine_path(meta.get("model_hash", "unknown"), calibrated, trt.__version__, gpu, iterations=iterations)
            data = path.read_bytes() if path.is_file() else build_engine(onnx_path, calibrated, trt, path)
            logger = trt.Logger(trt.Logger.WARNING)
            self.engine = trt.Runtime(logger).deserialize_cuda_engine(data)
            if self.engine is None:
                raise BackendError(f"tensorrt backend: cannot load the cached engine {path} (delete it to rebuild)")
            self.context = self.engine.create_execution_context()
            self.stream = cuda.Stream()
            names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
            self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            self.outputs = [n for n in names if n not in self.inputs]
            self._buffers: dict[tuple[str, tuple[int, ...]], tuple[np.ndarray, Any]] = {}  # host, pycuda device allocation
        finally:
            self.context_cuda.pop()
        self.calibrated = calibrated
        self.capabilities = Capabilities("cuda", "fp16", dynamic_views=True)
        self.gpu_name = gpu

    def _buffer(self, name: str, shape: tuple[int, ...]) -> tuple[np.ndarray, Any]:
        key = (name, shape)
        if key not in self._buffers:
            host = self.cuda.pagelocked_empty(shape, np.float32)
            self._buffers[key] = (host, self.cuda.mem_alloc(host.nbytes))
        return self._buffers[key]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = check_feed(feed, self.calibrated)
        self.context_cuda.push()
        try:
            for name in self.inputs:
                array = feed[name]
                host, device = self._buffer(name, array.shape)
                np.copyto(host, array)
                self.context.set_input_shape(name, array.shape)
                self.context.set_tensor_address(name, int(device))
                self.cuda.memcpy_htod_async(device, host, self.stream)
            results = {}
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                host, device = self._buffer(name, shape)
                self.context.set_tensor_address(name, int(device))
                results[name] = host
            if not self.context.execute_async_v3(self.stream.handle):
                raise BackendError("tensorrt backend: inference failed")
            for name in self.outputs:
                host, device = self._buffer(name, results[name].shape)
                self.cuda.memcpy_dtoh_async(host, device, self.stream)
            self.stream.synchronize()
        finally:
            self.context_cuda.pop()
        return {n: results[n].copy() for n in output_names()}
