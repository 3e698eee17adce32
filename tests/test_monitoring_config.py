"""The room file's ``[monitoring]`` and ``[privacy]`` tables (monitoring.config): a full file is read
into the right values, each bad field is one MonitorError naming the file and the field, the zone
editor's TOML reads back as the same zones, and the camera loader still accepts such a room file."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import numpy as np
import pytest

from capture.room import load_room
from monitoring.config import MonitorConfig, MonitorError, QuietHours, Thresholds, Zone, load_config, parse_config, zones_to_toml

ROOM = """\
[room]
name = "ward-3"

[[camera]]
name = "a"
source = "usb:0"
resolution = [480, 640]

[monitoring]
quiet_hours = ["22:30", "06:45"]
alert_escalate_s = 90

[monitoring.thresholds]
on_floor_s = 30
fall_drop_m = 0.6
blind_s = 12.5

[[monitoring.zone]]
name = "bed"
kind = "bed"
polygon = [[0.5, 1.0], [2.5, 1.0], [2.5, 2.0], [0.5, 2.0]]
height = 0.55

[[monitoring.zone]]
name = "door"
kind = "door"
polygon = [[-0.5, -0.5], [0.5, -0.5], [0.0, 0.3]]

[monitoring.mqtt]
host = "broker.local"

[privacy]
display = "mesh-only"
mesh_only_cameras = ["a"]
blur_faces = true
recording = "events"
event_padding_s = 15
retention_days = 30
"""


def write(tmp_path: Path, text: str, name: str = "room.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_full_room_file_read_right(tmp_path: Path) -> None:
    path = write(tmp_path, ROOM)
    config = load_config(path)
    assert config.room == "ward-3"
    assert str(path) in config.source
    assert config.quiet_hours == QuietHours(dt.time(22, 30), dt.time(6, 45))
    assert config.alert_escalate_s == 90.0
    assert config.thresholds == Thresholds(on_floor_s=30.0, fall_drop_m=0.6, blind_s=12.5)
    assert config.thresholds.no_movement_s == Thresholds().no_movement_s  # untouched default
    assert [(z.name, z.kind, z.height) for z in config.zones] == [("bed", "bed", 0.55), ("door", "door", 0.0)]
    np.testing.assert_allclose(config.zones[0].polygon, [[0.5, 1.0], [2.5, 1.0], [2.5, 2.0], [0.5, 2.0]])
    assert config.zones[1].polygon.shape == (3, 2)
    assert config.mqtt == {"host": "broker.local"}
    assert config.webhook is None
    p = config.privacy
    assert (p.display, p.mesh_only_cameras, p.blur_faces, p.recording) == ("mesh-only", ("a",), True, "events")
    assert (p.event_padding_s, p.retention_days) == (15.0, 30.0)
    # the zones answer "where is this floor point"
    assert config.zone_at(np.array([1.0, 1.5])).name == "bed"  # type: ignore[union-attr]
    assert config.zone_at(np.array([0.0, 0.0])).name == "door"  # type: ignore[union-attr]
    assert config.zone_at(np.array([3.0, 3.0])) is None
    # quiet hours across midnight
    hours = config.quiet_hours
    assert hours is not None
    assert hours.contains(dt.datetime(2026, 1, 1, 23, 0))
    assert hours.contains(dt.datetime(2026, 1, 1, 3, 0))
    assert not hours.contains(dt.datetime(2026, 1, 1, 6, 45))
    assert not hours.contains(dt.datetime(2026, 1, 1, 12, 0))


def test_a_room_file_without_monitoring_gets_the_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[room]\nname = "x"\n', "plain.toml"))
    assert config.zones == ()
    assert config.quiet_hours is None
    assert config.thresholds == Thresholds()
    assert config.privacy.display == "video" and config.privacy.recording == "all"
    assert load_config(write(tmp_path, "", "bare.toml")).room == "bare"  # the file's stem without [room] name


def test_camera_loader_still_reads_a_room_with_monitoring_and_privacy(tmp_path: Path) -> None:
    room = load_room(write(tmp_path, ROOM))
    assert room.name == "ward-3"
    assert [c.name for c in room.cameras] == ["a"]


# (what to put in the file, the words the message must hold besides the file's path)
BAD = {
    "unknown-monitoring-key": ('[monitoring]\nquiet_hour = ["22:00", "07:00"]\n', ["[monitoring]", "'quiet_hour'"]),
    "unknown-threshold": ("[monitoring.thresholds]\non_flor_s = 3\n", ["[monitoring.thresholds]", "'on_flor_s'"]),
    "unknown-zone-key": (
        '[[monitoring.zone]]\nname = "b"\nkind = "bed"\npolygon = [[0, 0], [1, 0], [1, 1]]\ncolour = "red"\n',
        ["zone #1", "'colour'"],
    ),
    "unknown-privacy-key": ("[privacy]\nblur = true\n", ["[privacy]", "'blur'"]),
    "bad-kind": (
        '[[monitoring.zone]]\nname = "b"\nkind = "sofa"\npolygon = [[0, 0], [1, 0], [1, 1]]\n',
        ["'b'", "'kind'", "'sofa'"],
    ),
    "two-point-polygon": ('[[monitoring.zone]]\nname = "b"\nkind = "bed"\npolygon = [[0, 0], [1, 0]]\n', ["'b'", "'polygon'"]),
    "polygon-not-points": ('[[monitoring.zone]]\nname = "b"\nkind = "bed"\npolygon = "square"\n', ["'b'", "'polygon'"]),
    "zone-without-name": ('[[monitoring.zone]]\nkind = "bed"\npolygon = [[0, 0], [1, 0], [1, 1]]\n', ["zone #1", "'name'"]),
    "zone-height-too-high": (
        '[[monitoring.zone]]\nname = "b"\nkind = "bed"\npolygon = [[0, 0], [1, 0], [1, 1]]\nheight = 7\n',
        ["'b'", "'height'"],
    ),
    "bad-time": ('[monitoring]\nquiet_hours = ["25:00", "07:00"]\n', ["monitoring.quiet_hours", "'25:00'"]),
    "one-time": ('[monitoring]\nquiet_hours = ["22:00"]\n', ["monitoring.quiet_hours"]),
    "negative-threshold": ("[monitoring.thresholds]\non_floor_s = -5\n", ["monitoring.thresholds.on_floor_s", "-5"]),
    "text-threshold": ('[monitoring.thresholds]\nclear_s = "2"\n', ["monitoring.thresholds.clear_s"]),
    "zero-escalate": ("[monitoring]\nalert_escalate_s = 0\n", ["monitoring.alert_escalate_s"]),
    "bad-display": ('[privacy]\ndisplay = "blurred"\n', ["privacy.display", "'blurred'"]),
    "bad-recording": ('[privacy]\nrecording = "some"\n', ["privacy.recording", "'some'"]),
    "negative-retention": ("[privacy]\nretention_days = -1\n", ["privacy.retention_days"]),
    "blur-not-bool": ('[privacy]\nblur_faces = "yes"\n', ["privacy.blur_faces"]),
    "cameras-not-list": ('[privacy]\nmesh_only_cameras = "a"\n', ["privacy.mesh_only_cameras"]),
    "monitoring-not-table": ('monitoring = "on"\n', ["[monitoring]", "table"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_field_names_the_file_and_the_field(tmp_path: Path, case: str) -> None:
    text, words = BAD[case]
    path = write(tmp_path, text)
    with pytest.raises(MonitorError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    for word in words:
        assert word in message, (word, message)


def test_duplicate_zone_names_are_refused(tmp_path: Path) -> None:
    zone = '[[monitoring.zone]]\nname = "bed"\nkind = "bed"\npolygon = [[0, 0], [1, 0], [1, 1]]\n'
    path = write(tmp_path, zone + zone)
    with pytest.raises(MonitorError, match=r"zone 'bed'.*another zone"):
        load_config(path)


def test_zone_names_equal_once_stripped_are_refused(tmp_path: Path) -> None:
    zone = '[[monitoring.zone]]\nname = "{}"\nkind = "bed"\npolygon = [[0, 0], [1, 0], [1, 1]]\n'
    path = write(tmp_path, zone.format("bed") + zone.format("bed "))
    with pytest.raises(MonitorError, match="another zone"):
        load_config(path)


def test_zones_to_toml_round_trips_through_parse_config() -> None:
    zones = (
        Zone("bed", "bed", np.array([[0.5, 1.0], [2.5, 1.0], [2.5, 2.0], [0.5, 2.0]]), 0.55),
        Zone("door", "door", np.array([[-0.5, -0.5], [0.5, -0.5], [0.123, 0.3]])),
        Zone("stairs", "no-go", np.array([[3.0, 3.0], [4.0, 3.0], [4.0, 4.5], [3.5, 5.0], [3.0, 4.5]]), 0.0),
    )
    text = zones_to_toml(zones)
    config = parse_config(tomllib.loads(text), "zone editor")
    assert isinstance(config, MonitorConfig)
    assert [(z.name, z.kind, z.height) for z in config.zones] == [(z.name, z.kind, z.height) for z in zones]
    for read, wrote in zip(config.zones, zones, strict=True):
        np.testing.assert_allclose(read.polygon, wrote.polygon, atol=1e-3)
    assert parse_config(tomllib.loads(zones_to_toml([])), "empty").zones == ()


def test_zones_to_toml_keeps_names_with_quotes() -> None:
    zones = (Zone('Mum\'s "big" bed', "bed", np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]), 0.5),)
    config = parse_config(tomllib.loads(zones_to_toml(zones)), "zone editor")
    assert config.zones[0].name == 'Mum\'s "big" bed'
