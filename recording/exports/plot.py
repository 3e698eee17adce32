"""A PNG overview of a session's motion (a matplotlib Figure drawn by Agg, without pyplot: no display,
no global state).

Left: the floor plan (world X/Y, metres, equal scale) with each person's pelvis trajectory in their
colour (a circle where it starts, a cross where it ends). Right: one panel per person with head
(solid) and pelvis (dashed) height above the floor over time. Events are vertical lines labelled
``type phase`` in the panel of their person (every panel for an event without one; none outside
the motion's time span); falls red, others orange (severity "alarm"/"critical") or grey. The file
type follows the suffix (.png, .pdf, .svg).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from recording.exports import ExportError, Progress
from recording.exports.trc import SMPL_JOINT_NAMES
from recording.motion import Motion

Events = Sequence[Mapping[str, object]]
PELVIS, HEAD = SMPL_JOINT_NAMES.index("pelvis"), SMPL_JOINT_NAMES.index("head")
DPI = 100
SIZE_IN = (14.0, 7.0)  # inches: 1400 x 700 pixels at DPI (2.5 inches more height a person from 3 people)


@dataclass
class Plot:
    """What :func:`write_all` drew: the figure, the floor-plan axes, and the height-over-time
    axes of each person (their ``transData`` gives PNG pixels, origin bottom-left)."""

    path: Path
    figure: Figure
    floor: Axes
    heights: dict[int, Axes]


def write_all(motions: Sequence[Motion], path: str | Path, *, events: Events | None = None,
              progress: Progress | None = None) -> Plot:  # fmt: skip
    """Draw the overview of ``motions`` (and ``events``) to ``path`` (PNG, PDF or SVG by its suffix)."""
    if not motions:
        raise ExportError(f"plot {path}: there is no motion to draw")
    path = Path(path)
    figure = Figure(figsize=(SIZE_IN[0], max(SIZE_IN[1], 2.5 * len(motions))), dpi=DPI)
    grid = figure.add_gridspec(len(motions), 2, width_ratios=(1, 1.6))
    floor = figure.add_subplot(grid[:, 0])
    heights: dict[int, Axes] = {}
    span = (min(float(m.times[0]) for m in motions), max(float(m.times[-1]) for m in motions))
    for i, motion in enumerate(motions):
        colour = f"C{i % 10}"
        _floor_path(floor, motion, colour)
        axes = figure.add_subplot(grid[i, 1], sharex=next(iter(heights.values()), None))
        _heights(axes, motion, colour, last=i == len(motions) - 1)
        _events(axes, motion.person, events or (), span)
        heights[motion.person] = axes
        if progress is not None:
            progress(0.8 * (i + 1) / len(motions))
    for axes in heights.values():
        axes.set_xlim(span if span[1] > span[0] else (span[0] - 0.5, span[0] + 0.5))
    floor.set(title="Floor plan: pelvis path", xlabel="x (m)", ylabel="y (m)")
    floor.set_aspect("equal", adjustable="datalim")
    floor.legend(loc="upper left", fontsize="small")  # "best" is slow on long paths
    floor.grid(True, alpha=0.3)
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=DPI)
    except OSError as exc:
        raise ExportError(f"plot {path}: cannot be written ({exc.strerror or exc})") from None
    if progress is not None:
        progress(1.0)
    return Plot(path, figure, floor, heights)


def _floor_path(axes: Axes, motion: Motion, colour: str) -> None:
    xy = motion.joints[:, PELVIS, :2]
    axes.plot(xy[:, 0], xy[:, 1], color=colour, lw=1.2, label=f"person {motion.person}")
    ends = xy[motion.valid]
    if len(ends):
        axes.plot(*ends[0], "o", color=colour, ms=7)
        axes.plot(*ends[-1], "x", color=colour, ms=9, mew=2)


def _heights(axes: Axes, motion: Motion, colour: str, last: bool) -> None:
    axes.plot(motion.times, motion.joints[:, HEAD, 2], color=colour, lw=1.2, label="head")
    axes.plot(motion.times, motion.joints[:, PELVIS, 2], color=colour, lw=1.2, ls="--", label="pelvis")
    axes.set_ylabel(f"person {motion.person}\nheight (m)")
    axes.set_ylim(bottom=0.0)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    if last:
        axes.set_xlabel("time (s)")


def _events(axes: Axes, person: int, events: Events, span: tuple[float, float]) -> None:
    for event in events:
        t = event.get("t")
        if event.get("person") not in (None, person) or not isinstance(t, int | float) or not span[0] <= t <= span[1]:
            continue
        kind = str(event.get("type", "event"))
        colour = "red" if kind == "fall" else "orange" if event.get("severity") in ("alarm", "critical") else "grey"
        axes.axvline(t, color=colour, lw=1.5)
        label = f"{kind} {event.get('phase') or ''}".strip()
        axes.text(t, 0.98, f" {label}", transform=axes.get_xaxis_transform(), rotation=90, va="top", ha="left",
                  fontsize="x-small", color=colour)  # fmt: skip
