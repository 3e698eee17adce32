"""Exports of everyone's motion (recording.motion) to other tools' files, chosen by name.

:data:`FORMATS` maps a format to its module in this package (imported only when used), its file
suffix(es) and whether it holds one skeleton (one file per person) or everyone. A single-skeleton
module exposes ``write(motion, path, *, up="z", progress=None)``; a multi-person one
``write_all(motions, path, *, events=None, progress=None)`` (``events``: the session's
``events.jsonl`` records when the source is a recorded session). ``progress`` is called with the
fraction done (0..1). :func:`export` runs one from a results file or a session folder; the
command line (``python -m recording export``) and the app's File -> Export... both call it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from core.errors import AppError
from core.outputs import check_output
from recording.motion import Motion, load_motions

Progress = Callable[[float], None]
"""Called with the fraction of the export done (0..1)."""

UP_AXES = ("z", "y")


class ExportError(AppError):
    """An export cannot be made (names the format, flag or file)."""


@dataclass(frozen=True)
class ExportFormat:
    """One export: its module under recording.exports, the file suffixes it writes (the first is
    the default), whether it holds one person (one file each) and a few words on what it is."""

    module: str
    suffixes: tuple[str, ...]
    one_per_person: bool
    what: str

    @property
    def suffix(self) -> str:
        return self.suffixes[0]


FORMATS: dict[str, ExportFormat] = {
    "amass": ExportFormat("amass", (".npz",), True, "AMASS-style SMPL parameters (poses, trans, betas)"),
    "bvh": ExportFormat("bvh", (".bvh",), True, "BVH skeleton animation (Blender, MotionBuilder)"),
    "glb": ExportFormat("glb", (".glb",), True, "glTF binary: skinned animated mesh"),
    "c3d": ExportFormat("c3d", (".c3d",), True, "C3D markers (biomechanics tools)"),
    "trc": ExportFormat("trc", (".trc",), True, "OpenSim TRC markers"),
    "csv": ExportFormat("tables", (".csv",), False, "a table of everyone's joints per frame (CSV)"),
    "parquet": ExportFormat("tables", (".parquet",), False, "a table of everyone's joints per frame (Parquet)"),
    "plot": ExportFormat("plot", (".png", ".pdf", ".svg"), False, "a plot of everyone's motion and the events"),
}


def export_format(name: str) -> ExportFormat:
    """The registered format ``name`` (ExportError listing the known ones)."""
    if name not in FORMATS:
        raise ExportError(f"--format {name}: unknown (known: {', '.join(FORMATS)})")
    return FORMATS[name]


def export_module(name: str) -> ModuleType:
    """The module that writes format ``name``, imported now (ExportError when this version has
    no such module, or when a package it needs is not installed)."""
    full = f"{__name__}.{export_format(name).module}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name in (full, None):
            raise ExportError(f"format {name} is not available in this version") from None
        raise ExportError(f"format {name} needs the Python package {exc.name!r}, which is not installed") from None


def output_paths(name: str, out: Path, people: list[int]) -> dict[int | None, Path]:
    """Where each file goes: ``out`` for a multi-person format (key None) or a single person, else
    ``<stem>_person<ID><suffix>`` beside it for each person. ``out`` without a suffix gets the
    format's; another suffix is an ExportError naming --out."""
    fmt = export_format(name)
    if not out.suffix:
        out = out.with_suffix(fmt.suffix)
    if out.suffix.lower() not in fmt.suffixes:
        raise ExportError(f"--out {out}: a {name} export is written to a {' or '.join(fmt.suffixes)} file")
    if not fmt.one_per_person:
        return {None: out}
    if len(people) == 1:
        return {people[0]: out}
    return {p: out.with_name(f"{out.stem}_person{p}{out.suffix}") for p in people}


def select_person(motions: list[Motion], person: int | None, source: Path) -> list[Motion]:
    """``motions`` or only ``person``'s (ExportError naming --person and who there is)."""
    if person is None:
        return motions
    chosen = [m for m in motions if m.person == person]
    if not chosen:
        ids = ", ".join(str(m.person) for m in motions)
        raise ExportError(f"--person {person}: nobody with that id in {source} (people: {ids})")
    return chosen


def export(source: str | Path, name: str, out: str | Path, *, person: int | None = None, up: str | None = None,
           progress: Progress | None = None) -> list[Path]:  # fmt: skip
    """Export the motion of ``source`` (a results ``.npz`` or a recorded session folder) as format
    ``name`` to ``out``; returns the files written. ``up``: the up axis for the single-skeleton
    formats (None: the format's own default); ``progress``: the fraction done, 0..1."""
    source, out = Path(source), Path(out)
    fmt = export_format(name)
    if up is not None and up not in UP_AXES:
        raise ExportError(f"--up {up}: must be one of {', '.join(UP_AXES)}")
    if up is not None and not fmt.one_per_person:
        raise ExportError(f"--up {up}: a {name} export keeps the world frame (Z up, metres); leave --up out")
    check_output(output_paths(name, out, [0])[0 if fmt.one_per_person else None], "--out")  # fails before any loading
    module = export_module(name)  # before the (possibly long) loading: an unavailable format fails at once
    motions = select_person(load_motions(source), person, source)
    paths = output_paths(name, out, [m.person for m in motions])
    for path in paths.values():
        check_output(path, "--out")
    report = progress or (lambda fraction: None)
    report(0.0)
    try:
        if fmt.one_per_person:
            _write_each(module, motions, paths, up, report)
        else:
            _write_all(module, motions, paths[None], _events(source), report)
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot write ({exc.strerror or exc})") from exc
    report(1.0)
    return list(paths.values())


def _write_each(module: ModuleType, motions: list[Motion], paths: dict[int | None, Path], up: str | None,
                report: Progress) -> None:  # fmt: skip
    n = len(motions)
    for i, motion in enumerate(motions):
        options = {} if up is None else {"up": up}
        module.write(motion.span(), paths[motion.person], progress=lambda f, i=i: report((i + min(max(f, 0.0), 1.0)) / n),
                     **options)  # fmt: skip


def _write_all(module: ModuleType, motions: list[Motion], path: Path, events: list[dict[str, object]] | None,
               report: Progress) -> None:  # fmt: skip
    module.write_all(motions, path, events=events, progress=report)


def _events(source: Path) -> list[dict[str, object]] | None:
    """The session's events (None for a results file, which keeps none)."""
    if not source.is_dir():
        return None
    from recording.reader import read_events

    return read_events(source)
