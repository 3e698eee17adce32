"""What the monitor needs to know about a room, read from the room file's ``[monitoring]`` tables.

    [monitoring]
    quiet_hours = ["22:00", "07:00"]     # bed exit is an event between these (local time)
    alert_escalate_s = 120                # an alert not acknowledged by then is escalated

    [monitoring.thresholds]               # every one optional; the defaults are in Thresholds
    on_floor_s = 60

    [[monitoring.zone]]
    name = "bed"
    kind = "bed"                          # bed, chair, door, bathroom, no-go
    polygon = [[0.5, 1.0], [2.5, 1.0], [2.5, 2.0], [0.5, 2.0]]   # floor x, y in metres (world)
    height = 0.55                         # the top of the furniture, metres above the floor

    [monitoring.mqtt] / [monitoring.webhook]   # where alerts go (monitoring.mqtt, monitoring.webhook)

    [privacy]
    display = "video"                     # or "mesh-only": no camera pixels on screen
    mesh_only_cameras = []                # mesh-only for these cameras only
    blur_faces = false                    # in the display and in recorded video
    recording = "all"                     # "events": video only around events; "results": no video
    event_padding_s = 10                  # seconds kept before and after each event ("events")
    retention_days = 0                    # recorded sessions older than this are deleted (0: never)

Everything is checked when read: one MonitorError naming the file, the table and the field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import AppError
from core.tomlfile import read_toml

ZONE_KINDS = ("bed", "chair", "door", "bathroom", "no-go")
DISPLAY_MODES = ("video", "mesh-only")
RECORDING_MODES = ("all", "events", "results")


class MonitorError(AppError):
    """The monitoring part of a room file (or a results file given to the monitor) is wrong."""


@dataclass(frozen=True)
class Thresholds:
    """The rules' numbers (metres, seconds, metres per second). Defaults suit an adult in a room."""

    floor_pelvis_m: float = 0.40  # pelvis below this (and head below floor_head_m) = on the floor
    floor_head_m: float = 0.75
    fall_drop_m: float = 0.40  # a fall: head or pelvis came down at least this much (out of a bed: ~0.5) ...
    fall_speed_mps: float = 0.9  # ... the trunk (between head and pelvis) at a peak downward speed of at least this ...
    fall_window_s: float = 2.0  # ... within this time before reaching the floor
    fall_speed_window_s: float = 1.0  # (the peak speed within this last part of it)
    fall_confirm_s: float = 0.5  # and stayed on the floor this long
    on_floor_s: float = 60.0  # on the floor for longer than this: an alert
    on_floor_escalate_s: float = 300.0  # ... and escalated after this
    no_movement_s: float = 300.0  # nothing moved more than still_m for this long
    still_m: float = 0.10
    bed_exit_confirm_s: float = 1.0  # out of the bed this long (quiet hours) after bed_min_s in it
    bed_min_s: float = 5.0
    zone_confirm_s: float = 1.0  # inside a no-go zone this long
    count_confirm_s: float = 3.0  # a new people count holds this long before it is an event
    blind_s: float = 10.0  # nobody trackable this long while the room is not known to be empty
    walking_mps: float = 0.3  # standing and moving faster than this = walking
    posture_confirm_s: float = 0.3  # a posture holds this long before the state changes
    clear_s: float = 2.0  # a condition is resolved once it has been false this long


@dataclass(frozen=True)
class Zone:
    """A named polygon on the floor (world x, y metres) with a height (the top of the furniture)."""

    name: str
    kind: str
    polygon: np.ndarray  # [N, 2]
    height: float = 0.0

    def contains(self, xy: np.ndarray) -> bool:
        """Whether the floor point ``xy`` lies inside the polygon (even-odd rule)."""
        x, y = float(xy[0]), float(xy[1])
        inside = False
        p = self.polygon
        for i in range(len(p)):
            (x1, y1), (x2, y2) = p[i], p[i - 1]
            if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
                inside = not inside
        return inside

    def to_table(self) -> dict[str, object]:
        polygon = [[round(float(a), 3), round(float(b), 3)] for a, b in self.polygon]
        return {"name": self.name, "kind": self.kind, "polygon": polygon, "height": self.height}


@dataclass(frozen=True)
class QuietHours:
    """A daily period of local time, possibly across midnight (start 22:00, end 07:00)."""

    start: dt.time
    end: dt.time

    def contains(self, when: dt.datetime) -> bool:
        now = when.time()
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end


@dataclass(frozen=True)
class Privacy:
    display: str = "video"
    mesh_only_cameras: tuple[str, ...] = ()
    blur_faces: bool = False
    recording: str = "all"
    event_padding_s: float = 10.0
    retention_days: float = 0.0


@dataclass(frozen=True)
class MonitorConfig:
    room: str = "room"
    zones: tuple[Zone, ...] = ()
    quiet_hours: QuietHours | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    alert_escalate_s: float = 120.0
    mqtt: dict[str, Any] | None = None  # the raw [monitoring.mqtt] table (monitoring.mqtt parses it)
    webhook: dict[str, Any] | None = None  # the raw [monitoring.webhook] table
    privacy: Privacy = field(default_factory=Privacy)
    source: str = "defaults"  # where it was read from, for messages
    folder: Path | None = None  # the room file's folder (relative TLS file names are taken from it)

    def zone_at(self, xy: np.ndarray) -> Zone | None:
        """The zone the floor point lies in (the first listed when they overlap), or None."""
        for zone in self.zones:
            if zone.contains(xy):
                return zone
        return None


def load_config(path: str | Path, room_name: str | None = None) -> MonitorConfig:
    """The monitoring configuration of the room file at ``path`` (defaults where it says nothing)."""
    path = Path(path)
    data = read_toml(path, "room file", MonitorError)
    name = room_name or (data.get("room") or {}).get("name") or path.stem
    return dataclasses.replace(parse_config(data, f"room file {path}", str(name)), folder=path.parent)


def parse_config(data: dict[str, Any], where: str, room: str = "room") -> MonitorConfig:
    """The configuration from a room file's parsed TOML (its ``monitoring`` and ``privacy`` tables)."""
    table = _table(data.get("monitoring", {}), f"{where}: [monitoring]")
    check_fields(table, ("quiet_hours", "alert_escalate_s", "thresholds", "zone", "mqtt", "webhook"), f"{where}: [monitoring]")
    thresholds = _thresholds(_table(table.get("thresholds", {}), f"{where}: [monitoring.thresholds]"), where)
    zones = _zones(table.get("zone", []), where)
    quiet = _quiet_hours(table.get("quiet_hours"), where)
    escalate = _positive(table.get("alert_escalate_s", 120.0), f"{where}: field 'monitoring.alert_escalate_s'")
    mqtt = table.get("mqtt")
    webhook = table.get("webhook")
    for key, value in (("mqtt", mqtt), ("webhook", webhook)):
        if value is not None:
            _table(value, f"{where}: [monitoring.{key}]")
    privacy = _privacy(_table(data.get("privacy", {}), f"{where}: [privacy]"), where)
    return MonitorConfig(room, zones, quiet, thresholds, escalate, mqtt, webhook, privacy, where)


def zones_to_toml(zones: list[Zone] | tuple[Zone, ...]) -> str:
    """The ``[[monitoring.zone]]`` tables of a room file for these zones (the zone editor saves them)."""
    out = []
    for zone in zones:
        points = ", ".join(f"[{float(x):.3f}, {float(y):.3f}]" for x, y in zone.polygon)
        head = f"[[monitoring.zone]]\nname = {json.dumps(zone.name)}\nkind = {json.dumps(zone.kind)}\n"
        out.append(f"{head}polygon = [{points}]\nheight = {zone.height:.3f}\n")
    return "\n".join(out)


def save_zones(path: str | Path, zones: list[Zone] | tuple[Zone, ...]) -> None:
    """Write ``zones`` into the room file at ``path``: its ``[[monitoring.zone]]`` tables are replaced,
    everything else (comments included) is kept. The result is read back and checked before the
    file is replaced (atomically), so a failure leaves the old file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MonitorError(f"room file {path}: cannot be read ({exc.strerror or exc})") from None
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        header = line.strip()
        if header.startswith("["):
            skipping = header.replace(" ", "") == "[[monitoring.zone]]"
        if not skipping:
            kept.append(line)
    body = "\n".join(kept).rstrip() + "\n"
    if zones:
        body += "\n" + zones_to_toml(zones)
    try:
        parse_config(tomllib.loads(body), f"room file {path}")
    except tomllib.TOMLDecodeError as exc:
        raise MonitorError(f"room file {path}: the zones could not be written ({exc})") from None
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(body, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise MonitorError(f"room file {path}: cannot be written ({exc.strerror or exc})") from None


def _thresholds(table: dict[str, Any], where: str) -> Thresholds:
    names = [f.name for f in dataclasses.fields(Thresholds)]
    check_fields(table, tuple(names), f"{where}: [monitoring.thresholds]")
    values = {key: _positive(value, f"{where}: field 'monitoring.thresholds.{key}'") for key, value in table.items()}
    return Thresholds(**values)


def _zones(entries: object, where: str) -> tuple[Zone, ...]:
    if not isinstance(entries, list):
        raise MonitorError(f"{where}: 'monitoring.zone' must be a list of [[monitoring.zone]] tables")
    zones: list[Zone] = []
    for i, entry in enumerate(entries):
        here = f"{where}: zone #{i + 1}"
        entry = _table(entry, here)
        check_fields(entry, ("name", "kind", "polygon", "height"), here)
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise MonitorError(f"{here}: field 'name' must be non-empty text")
        name = name.strip()
        here = f"{where}: zone {name!r}"
        if name in [z.name for z in zones]:
            raise MonitorError(f"{here}: the name is used by another zone")
        kind = entry.get("kind")
        if kind not in ZONE_KINDS:
            raise MonitorError(f"{here}: field 'kind' is {kind!r}; expected one of {', '.join(ZONE_KINDS)}")
        try:
            polygon = np.asarray(entry.get("polygon"), float)
        except (TypeError, ValueError):
            polygon = np.zeros(0)
        if polygon.ndim != 2 or polygon.shape[1] != 2 or len(polygon) < 3 or not np.isfinite(polygon).all():
            raise MonitorError(f"{here}: field 'polygon' must list at least 3 floor points [x, y] in metres")
        height = _number(entry.get("height", 0.0), f"{here}: field 'height'")
        if not 0.0 <= height <= 3.0:
            raise MonitorError(f"{here}: field 'height' is {height} m; expected 0 to 3 m above the floor")
        zones.append(Zone(name.strip(), kind, polygon, height))
    return tuple(zones)


def _quiet_hours(value: object, where: str) -> QuietHours | None:
    if value is None:
        return None
    here = f"{where}: field 'monitoring.quiet_hours'"
    if not isinstance(value, list) or len(value) != 2:
        raise MonitorError(f'{here} must be two times, e.g. ["22:00", "07:00"]')
    times = []
    for text in value:
        try:
            times.append(dt.time.fromisoformat(str(text)))
        except ValueError:
            raise MonitorError(f"{here}: {text!r} is not a time of day (HH:MM)") from None
    return QuietHours(times[0], times[1])


def _privacy(table: dict[str, Any], where: str) -> Privacy:
    fields = [f.name for f in dataclasses.fields(Privacy)]
    check_fields(table, tuple(fields), f"{where}: [privacy]")
    display = table.get("display", "video")
    if display not in DISPLAY_MODES:
        raise MonitorError(f"{where}: field 'privacy.display' is {display!r}; expected one of {', '.join(DISPLAY_MODES)}")
    recording = table.get("recording", "all")
    if recording not in RECORDING_MODES:
        raise MonitorError(f"{where}: field 'privacy.recording' is {recording!r}; expected one of {', '.join(RECORDING_MODES)}")
    cameras = table.get("mesh_only_cameras", [])
    if not isinstance(cameras, list) or not all(isinstance(c, str) for c in cameras):
        raise MonitorError(f"{where}: field 'privacy.mesh_only_cameras' must be a list of camera names")
    blur = table.get("blur_faces", False)
    if not isinstance(blur, bool):
        raise MonitorError(f"{where}: field 'privacy.blur_faces' must be true or false")
    padding = _positive(table.get("event_padding_s", 10.0), f"{where}: field 'privacy.event_padding_s'")
    retention = _number(table.get("retention_days", 0.0), f"{where}: field 'privacy.retention_days'")
    if retention < 0:
        raise MonitorError(f"{where}: field 'privacy.retention_days' is {retention}; expected 0 (keep) or more days")
    return Privacy(display, tuple(cameras), blur, recording, padding, retention)


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MonitorError(f"{where} must be a table")
    return value


def check_fields(table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """MonitorError naming the first field of ``table`` that is not in ``allowed``."""
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise MonitorError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(allowed)})")


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MonitorError(f"{where} must be a number, not {value!r}")
    return float(value)


def _positive(value: object, where: str) -> float:
    number = _number(value, where)
    if number <= 0:
        raise MonitorError(f"{where} is {number}; it must be more than 0")
    return number
