"""Restricted unpickling of SMPL ``.pkl`` files: arrays only, nothing executed.

Official SMPL pickles hold numpy arrays, a ``scipy.sparse`` joint regressor and ``chumpy``
objects. Only the classes and functions needed to rebuild those are allowed; chumpy objects are
rebuilt as a stand-in that keeps their state and are turned into plain arrays afterwards, so
chumpy need not be installed. Anything else (``os.system``, ``builtins.eval``, ...) is refused
before it can run.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import AppError


class UnsafePickleError(AppError):
    """A pickle asked for something other than array data."""


class ChumpyStandIn:
    """Takes the place of any ``chumpy`` class; keeps the pickled state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def to_array(self) -> np.ndarray:
        state = self.state
        if isinstance(state, dict) and "x" in state:
            return np.asarray(state["x"])
        raise ValueError("chumpy object without array data ('x')")


_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    ("__builtin__", "object"), ("builtins", "object"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 store bytes this way
}  # fmt: skip
_SPARSE = {"csc_matrix", "csr_matrix", "coo_matrix"}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module.replace("copy_reg", "copyreg").replace("__builtin__", "builtins"), name)
        if module.startswith("numpy") and module.endswith("dtypes"):
            return super().find_class(module, name)  # numpy 2 dtype classes
        if module.startswith("scipy.sparse") and name in _SPARSE:
            import scipy.sparse

            return getattr(scipy.sparse, name)
        if module == "chumpy" or module.startswith("chumpy."):
            return ChumpyStandIn
        raise UnsafePickleError(f"body model file {self.path}: refused to load {module}.{name} (only array data is allowed)")


def load_pickle_arrays(path: str | Path) -> dict[str, Any]:
    """Read a SMPL-style pickle into a dict of numpy arrays / scipy sparse matrices / scalars."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = _RestrictedUnpickler(handle, path).load()
    except UnsafePickleError:
        raise
    except EOFError as exc:
        raise UnsafePickleError(f"body model file {path}: not a readable model pickle (empty or truncated)") from exc
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsafePickleError(f"body model file {path}: not a readable model pickle ({first})") from exc
    if not isinstance(data, dict):
        raise UnsafePickleError(f"body model file {path}: expected a dict of arrays, got {type(data).__name__}")
    try:
        return {str(key): _plain(value) for key, value in data.items()}
    except ValueError as exc:
        raise UnsafePickleError(f"body model file {path}: not a readable model pickle ({exc})") from exc


def _plain(value: Any) -> Any:
    if isinstance(value, ChumpyStandIn):
        return value.to_array()
    return value
