"""Live streaming (recording.streaming): VMC bundles received by a python-osc server rebuild the
body model's joints by forward kinematics, at the frame rate; plain OSC and JSON carry the joints;
the room file / --stream configuration; drops are counted, never raised."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_server import BlockingOSCUDPServer

from core.geometry import rodrigues_to_matrix
from core.types import BodyEstimate, FrameBody, FrameSet, Person
from engine.body.model import BodyModel
from recording.streaming import (
    SMPL_PARENTS,
    VMC_BONES,
    Streamer,
    StreamingError,
    StreamTarget,
    matrix_to_quaternion,
    open_streams,
    parse_stream_url,
    parse_streaming,
    stream_targets,
)

UPRIGHT = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # SMPL body (Y up, facing +Z) -> world facing +Y
BETAS = np.array([0.8, -0.5, 0.3, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0])
# Key poses, SMPL joint -> axis-angle (the body's local frame): a stride, arms at work, sitting.
POSES = [
    {},
    {1: [-0.5, 0, 0.1], 2: [0.4, 0, 0], 4: [0.9, 0, 0], 7: [-0.2, 0, 0], 16: [0, 0, -1.1], 17: [0, 0, 1.0], 3: [0.1, 0.2, 0]},
    {
        16: [0, -0.6, -0.3],
        18: [0, -1.2, 0],
        19: [0, 1.0, 0],
        21: [0.3, 0.2, 0.4],
        9: [0.2, 0, 0.1],
        12: [0.2, 0.3, 0],
        15: [0, 0.5, 0],
    },
    {1: [-1.5, 0, 0.1], 2: [-1.5, 0, -0.1], 4: [1.5, 0, 0], 5: [1.5, 0, 0], 6: [0.2, 0, 0], 13: [0, 0, -0.2], 22: [0.1, 0, 0.3]},
]


def axis_angles(pose: dict[int, list[float]]) -> np.ndarray:
    out = np.zeros((24, 3))
    for joint, value in pose.items():
        out[joint] = value
    return out


def person(model: BodyModel, pid: int, frac: float, yaw: float, at: tuple[float, float]) -> Person:
    """A person posed part-way (``frac`` in [0, len(POSES) - 1]) through the key poses, turned by ``yaw``
    about the world's Z, standing with the pelvis above ``at``: joints and keypoints from the body model."""
    i = min(int(frac), len(POSES) - 2)
    aa = (1 - (frac - i)) * axis_angles(POSES[i]) + (frac - i) * axis_angles(POSES[i + 1])
    rotations = rodrigues_to_matrix(aa)
    rotations[0] = rodrigues_to_matrix(np.array([0.0, 0.0, yaw])) @ UPRIGHT
    with torch.no_grad():
        out = model.joints_rotmat(
            torch.tensor(BETAS[None], dtype=torch.float32), torch.tensor(rotations[None], dtype=torch.float32)
        )
    joints, keypoints = out.joints[0].double().numpy(), out.keypoints[0].double().numpy()
    transl = np.array([at[0], at[1], 0.95]) - joints[0]
    body = replace(
        FrameBody.empty(1), orient=rotations[0], pose=rotations[1:], betas=BETAS, transl=transl, joints=joints + transl
    )
    kp3d = np.concatenate([keypoints + transl, np.full((17, 1), 0.9)], axis=1)
    kp3d[3] = 0.0  # an ear not triangulated: confidence 0
    return Person(pid, {}, keypoints3d=kp3d, body=body)


def estimate(index: int, t: float, people: list[Person]) -> BodyEstimate:
    return BodyEstimate(FrameSet({}, t, index), {}, people=people)


def sequence(model: BodyModel, n: int = 30, fps: float = 30.0) -> list[BodyEstimate]:
    """A person walking through the key poses while turning, and a bystander without a world body."""
    out = []
    for i in range(n):
        walker = person(model, 3, 3.0 * i / max(n - 1, 1), yaw=0.05 * i, at=(0.5 + 0.02 * i, 1.0))
        bystander = Person(7, {}, keypoints3d=np.concatenate([np.full((17, 3), 2.0), np.zeros((17, 1))], axis=1))
        out.append(estimate(i, i / fps, [bystander, walker]))
    return out


def quaternion_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])  # fmt: skip


def rest_offsets_unity(model: BodyModel) -> np.ndarray:
    """The documented bone offsets: SMPL's rest joints of BETAS, child minus parent, x mirrored."""
    with torch.no_grad():
        rest = model.joints_rotmat(torch.tensor(BETAS[None], dtype=torch.float32), torch.eye(3).repeat(1, 24, 1, 1))
    joints = rest.joints[0].double().numpy()
    offsets = joints - joints[[max(p, 0) for p in SMPL_PARENTS]]
    return offsets * np.array([-1.0, 1.0, 1.0])


def forward_kinematics(root: tuple, bones: dict[str, tuple], offsets: np.ndarray) -> np.ndarray:
    """What a Unity receiver does: world positions of the 24 bones from the received root and
    local rotations (Hips: its received position; others: ``offsets``), back in our world (Z up)."""
    root_p, root_r = np.array(root[1:4]), quaternion_matrix(np.array(root[4:8]))
    pos, rot = np.zeros((24, 3)), np.zeros((24, 3, 3))
    for k, name in enumerate(VMC_BONES):
        values = np.array(bones[name])
        parent = SMPL_PARENTS[k]
        if parent < 0:
            pos[k], rot[k] = root_p + root_r @ values[:3], root_r @ quaternion_matrix(values[3:])
        else:
            pos[k] = pos[parent] + rot[parent] @ offsets[k]
            rot[k] = rot[parent] @ quaternion_matrix(values[3:])
    return pos[:, [0, 2, 1]]  # Unity (x, y up, z) -> ours (x, y, z up)


class VmcReceiver:
    """A python-osc server on a free local port collecting VMC frames (one per /VMC/Ext/OK)."""

    def __init__(self) -> None:
        self.frames: list[dict] = []
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(self._message)
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def _message(self, address: str, *args: object) -> None:
        if address == "/VMC/Ext/OK":
            self.frames.append({"received": time.monotonic(), "ok": args, "bones": {}})
        elif address == "/VMC/Ext/Bone/Pos":
            self.frames[-1]["bones"][args[0]] = args[1:]
        else:
            self.frames[-1][address] = args

    def wait_for(self, count: int, timeout: float = 3.0) -> None:
        end = time.monotonic() + timeout
        while len(self.frames) < count and time.monotonic() < end:
            time.sleep(0.01)
        time.sleep(0.05)  # the last frame's bones

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = VmcReceiver()
    yield server
    server.close()


def play(streams_send, estimates: list[BodyEstimate], fps: float) -> list[float]:
    """Feed ``estimates`` to a pipeline subscriber at ``fps`` in real time; how long each call took (s)."""
    start, took = time.monotonic(), []
    for i, est in enumerate(estimates):
        time.sleep(max(0.0, start + i / fps - time.monotonic()))
        before = time.perf_counter()
        streams_send(est)
        took.append(time.perf_counter() - before)
    return took


# VMC


def test_vmc_bundles_arrive_at_the_frame_rate_and_rebuild_the_joints(body, receiver):
    estimates = sequence(body)
    streams = open_streams([StreamTarget("vmc", "127.0.0.1", receiver.port)])
    assert streams is not None
    try:
        took = play(streams.send, estimates, fps=30.0)
        receiver.wait_for(30)
    finally:
        streams.close()
    streamer = streams.streamers[0]
    assert (streamer.sent, streamer.dropped, streamer.skipped) == (30, 0, 0)
    assert len(receiver.frames) == 30
    arrivals = np.array([f["received"] for f in receiver.frames])
    gaps = np.diff(arrivals)
    assert abs(np.median(gaps) - 1 / 30) < 0.005, gaps
    assert abs(arrivals[-1] - arrivals[0] - 29 / 30) < 0.15
    assert np.median(took) < 0.005  # the pipeline's thread is not held up (about 1 ms a frame-set)
    offsets = rest_offsets_unity(body)
    worst = 0.0
    for frame, est in zip(receiver.frames, estimates, strict=True):
        assert frame["ok"] == (1,) and frame["/VMC/Ext/T"][0] == pytest.approx(est.timestamp, abs=1e-4)
        assert set(frame["bones"]) == set(VMC_BONES)
        received_offsets = np.array([frame["bones"][name][:3] for name in VMC_BONES])
        np.testing.assert_allclose(received_offsets[1:], offsets[1:], atol=1e-3)  # the documented rest offsets
        walker = est.people[1].body
        rebuilt = forward_kinematics(frame["/VMC/Ext/Root/Pos"], frame["bones"], offsets)
        worst = max(worst, float(np.abs(rebuilt - walker.joints).max()))
    assert worst < 0.01, worst
    # the poses really change the joints (the check above is not about a still body)
    assert np.abs(estimates[0].people[1].body.joints - estimates[15].people[1].body.joints).max() > 0.3


def test_vmc_axes_follow_unity(body):
    """A person facing world +Y is Unity's unrotated avatar (facing +Z, left hand at -X); turned 90 degrees
    to the left (to world -X) the Hips turn -90 degrees about Unity's Y; local rotations mirror x."""
    facing = person(body, 1, 0.0, yaw=0.0, at=(0.0, 0.0))
    streamer = Streamer(StreamTarget("vmc", "127.0.0.1", 9))
    try:
        bones = vmc_bones(streamer.datagram(estimate(0, 0.0, [facing])))
        turned = vmc_bones(streamer.datagram(estimate(1, 0.1, [person(body, 1, 0.0, yaw=np.pi / 2, at=(1.0, 2.0))])))
        stride = vmc_bones(streamer.datagram(estimate(2, 0.2, [person(body, 1, 1.0, yaw=0.0, at=(0.0, 0.0))])))
    finally:
        streamer.close()
    np.testing.assert_allclose(bones["Hips"][3:], [0, 0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(bones["Hips"][:3], [0.0, 0.95, 0.0], atol=1e-6)  # pelvis 0.95 m up = Unity y
    assert bones["LeftUpperLeg"][0] < -0.03 and bones["RightUpperLeg"][0] > 0.03  # the avatar's left is -X
    assert bones["LeftUpperArm"][0] < -0.05 and bones["Head"][1] > 0.05
    np.testing.assert_allclose(turned["Hips"][3:], [0, -np.sqrt(0.5), 0, np.sqrt(0.5)], atol=1e-6)
    np.testing.assert_allclose(turned["Hips"][:3], [1.0, 0.95, 2.0], atol=1e-6)
    # SMPL's knee flexion about the body's x stays about Unity's x; the hip's (-0.5, 0, 0.1) mirrors to (-0.5, 0, -0.1)
    np.testing.assert_allclose(stride["LeftLowerLeg"][3:], [np.sin(0.45), 0, 0, np.cos(0.45)], atol=1e-6)
    np.testing.assert_allclose(
        stride["LeftUpperLeg"][3:], matrix_to_quaternion(rodrigues_to_matrix(np.array([-0.5, 0, -0.1]))), atol=1e-6
    )


def vmc_bones(data: bytes | None) -> dict[str, np.ndarray]:
    assert data is not None
    bundle = OscBundle(data)
    return {m.params[0]: np.array(m.params[1:]) for m in bundle if m.address == "/VMC/Ext/Bone/Pos"}


def test_vmc_one_bundle_per_frame_for_the_chosen_person(body):
    est = estimate(4, 1.5, [person(body, 2, 1.0, 0.0, (0.0, 0.0)), person(body, 5, 2.0, 1.0, (2.0, 1.0))])
    first, chosen = Streamer(StreamTarget("vmc", "127.0.0.1", 9)), Streamer(StreamTarget("vmc", "127.0.0.1", 9, person=5))
    missing = Streamer(StreamTarget("vmc", "127.0.0.1", 9, person=9))
    try:
        bundle = OscBundle(first.datagram(est))
        addresses = [m.address for m in bundle]
        assert addresses[:3] == ["/VMC/Ext/OK", "/VMC/Ext/T", "/VMC/Ext/Root/Pos"] and addresses.count("/VMC/Ext/Bone/Pos") == 24
        assert vmc_bones(first.datagram(est))["Hips"][:3] == pytest.approx([0.0, 0.95, 0.0], abs=1e-6)
        assert vmc_bones(chosen.datagram(est))["Hips"][:3] == pytest.approx([2.0, 0.95, 1.0], abs=1e-6)
        assert missing.datagram(est) is None and not missing.send(est) and missing.skipped == 1
    finally:
        for s in (first, chosen, missing):
            s.close()


def test_quaternions_of_known_rotations():
    np.testing.assert_allclose(matrix_to_quaternion(np.eye(3)), [0, 0, 0, 1])
    np.testing.assert_allclose(
        matrix_to_quaternion(rodrigues_to_matrix(np.array([0, 0, np.pi / 2]))), [0, 0, np.sqrt(0.5), np.sqrt(0.5)]
    )
    np.testing.assert_allclose(
        np.abs(matrix_to_quaternion(rodrigues_to_matrix(np.array([np.pi, 0, 0])))), [1, 0, 0, 0], atol=1e-12
    )
    rotations = rodrigues_to_matrix(np.random.default_rng(1).normal(size=(500, 3)) * 1.5)
    back = np.stack([quaternion_matrix(q) for q in matrix_to_quaternion(rotations)])
    np.testing.assert_allclose(back, rotations, atol=1e-12)


# plain OSC and JSON


def test_json_datagrams_carry_everyone_s_joints(body):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2.0)
    estimates = sequence(body, n=5)
    streams = open_streams(stream_targets(None, [f"json://127.0.0.1:{receiver.getsockname()[1]}"]))
    assert streams is not None
    try:
        for est in estimates:
            streams.send(est)
        records = [json.loads(receiver.recvfrom(65536)[0]) for _ in estimates]
    finally:
        streams.close()
        receiver.close()
    for record, est in zip(records, estimates, strict=True):
        assert (
            record["format_version"] == 1
            and record["frame"] == est.frameset.index
            and record["t"] == pytest.approx(est.timestamp, abs=1e-6)
        )
        bystander, walker = record["people"]
        assert (bystander["id"], walker["id"]) == (7, 3)
        assert bystander["joints"] is None and bystander["rotations"] is None and len(bystander["keypoints3d"]) == 17
        truth = est.people[1]
        np.testing.assert_allclose(walker["joints"], truth.body.joints, atol=6e-5)
        np.testing.assert_allclose(np.array(walker["keypoints3d"]), truth.keypoints3d, atol=6e-5)
        rotations = np.stack([quaternion_matrix(np.array(q)) for q in walker["rotations"]])
        np.testing.assert_allclose(rotations[0], truth.body.orient, atol=1e-5)
        np.testing.assert_allclose(rotations[1:], truth.body.pose, atol=1e-5)


def test_plain_osc_sends_each_person_s_joints(body):
    got: dict[str, tuple] = {}
    dispatcher = Dispatcher()
    dispatcher.set_default_handler(lambda address, *args: got.__setitem__(address, args))
    server = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    est = sequence(body, n=3)[2]
    streamer = Streamer(parse_stream_url(f"osc://127.0.0.1:{server.server_address[1]}"))
    try:
        assert streamer.send(est)
        thread.join(3.0)
    finally:
        streamer.close()
        server.server_close()
    assert got["/frame"][1:] == (2, 2) and got["/frame"][0] == pytest.approx(est.timestamp)
    np.testing.assert_allclose(np.reshape(got["/person/3/joints"], (24, 3)), est.people[1].body.joints, atol=1e-5)
    np.testing.assert_allclose(np.reshape(got["/person/7/keypoints3d"], (17, 4)), est.people[0].keypoints3d, atol=1e-6)
    assert "/person/7/joints" not in got


def test_rate_limit_sends_at_most_the_rate(body):
    now = [0.0]
    streamer = Streamer(StreamTarget("json", "127.0.0.1", 9, rate=10.0), clock=lambda: now[0])
    try:
        for i, est in enumerate(sequence(body, n=30)):
            now[0] = i / 30
            streamer.send(est)
    finally:
        streamer.close()
    assert (streamer.sent + streamer.dropped, streamer.skipped) == (10, 20)


def test_refused_datagrams_are_dropped_counted_and_logged_once(body, caplog):
    streamer = Streamer(StreamTarget("json", "255.255.255.255", 9))  # broadcast without SO_BROADCAST: refused
    est = sequence(body, n=1)[0]
    try:
        assert not streamer.socket.getblocking()
        with caplog.at_level(logging.WARNING, logger="recording.streaming"):
            results = [streamer.send(est) for _ in range(3)]
    finally:
        streamer.close()
    assert results == [False] * 3 and (streamer.sent, streamer.dropped) == (0, 3)
    assert len([r for r in caplog.records if "dropping datagrams" in r.message]) == 1


# configuration


ROOM = """format_version = 1
[room]
name = "lab"
[[camera]]
name = "cam01"
source = "cam01.mp4"
resolution = [64, 48]
"""


def test_room_file_streaming_tables(tmp_path: Path):
    from capture.room import load_room

    (tmp_path / "cam01.mp4").write_bytes(b"")
    single = tmp_path / "one.toml"
    single.write_text(ROOM + '[streaming]\nformat = "vmc"\nhost = "127.0.0.1"\nperson = 2\nrate = 30\n')
    assert load_room(single).name == "lab"  # the room reader accepts the table
    assert stream_targets(single) == [StreamTarget("vmc", "127.0.0.1", 39539, 2, 30.0)]
    several = tmp_path / "two.toml"
    several.write_text(ROOM + '[[streaming]]\nformat = "json"\nhost = "::1"\nport = 9000\n'
                       '[[streaming]]\nformat = "osc"\nhost = "10.0.0.5"\nport = 9001\nenabled = false\n')  # fmt: skip
    assert load_room(several).name == "lab"
    targets = stream_targets(several, ["vmc://[::1]:40000"])
    assert targets == [StreamTarget("json", "::1", 9000), StreamTarget("vmc", "::1", 40000)]
    assert targets[0].describe() == "json://[::1]:9000"
    plain = tmp_path / "plain.toml"
    plain.write_text(ROOM)
    assert stream_targets(plain) == [] and open_streams(stream_targets(plain)) is None  # off by default


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"format": "mqtt", "host": "a", "port": 1}, "field 'format' must be one of vmc, osc, json"),
        ({"format": "json", "host": "a"}, "field 'port' is required for json"),
        ({"format": "vmc", "host": "a", "port": 70000}, "field 'port' must be a number from 1 to 65535"),
        ({"format": "vmc", "port": 1}, "field 'host'"),
        ({"format": "vmc", "host": "a", "rate": -1}, "field 'rate'"),
        ({"format": "vmc", "host": "a", "person": "first"}, "field 'person'"),
        ({"format": "vmc", "host": "a", "target": "x"}, "unknown field 'target'"),
        ({"format": "vmc", "host": "a", "enabled": "yes"}, "field 'enabled'"),
    ],
)
def test_bad_streaming_tables_name_the_field(table, message):
    with pytest.raises(StreamingError, match="room file r.toml: \\[streaming\\]") as info:
        parse_streaming({"streaming": table}, "room file r.toml")
    assert message in str(info.value)


@pytest.mark.parametrize("url", ["udp://127.0.0.1:9", "json://127.0.0.1", "vmc://", "json://host:port", "vmc://h:1/path"])
def test_bad_stream_urls(url):
    with pytest.raises(StreamingError, match="--stream"):
        parse_stream_url(url)


def test_unknown_host_is_an_error_naming_the_target():
    with pytest.raises(StreamingError, match="json://no-such-host.invalid:9"):
        open_streams([StreamTarget("json", "no-such-host.invalid", 9)])


# wiring: the controller (room file [streaming], start/stop) and main.py (--stream)


@pytest.mark.slow
def test_controller_streams_the_pipeline_s_bodies_from_the_room_file(body, receiver, tmp_path: Path):
    """The demo through the real pipeline (fake detector, HeatFormer): the room file's [streaming]
    target gets a VMC frame for every frame-set with a body; rebuilt from the received rotations and
    the body model's rest offsets, they are the pipeline's joints."""
    from app.controller import Controller
    from app.processing import open_processing
    from core.paths import ROOT
    from engine.runner import RunnerState

    room = tmp_path / "room.toml"
    room.write_text(
        (ROOT / "assets/demo/room.toml").read_text()
        + f'\n[streaming]\nformat = "vmc"\nhost = "127.0.0.1"\nport = {receiver.port}\n'
    )
    processing = open_processing(detector="fake")
    processing.room_file = room
    controller = Controller(processing, max_sets=8)
    seen: list[BodyEstimate] = []
    processing.pipeline.subscribe(seen.append)
    assert controller.room_streams == [StreamTarget("vmc", "127.0.0.1", receiver.port)]
    try:
        controller.start()
        end = time.monotonic() + 60
        while controller.state is not RunnerState.FINISHED and time.monotonic() < end:
            time.sleep(0.05)
        receiver.wait_for(1)
        (streams,) = controller.streams
        sent = streams.streamers[0].sent
    finally:
        controller.close()
    assert controller.streams == []
    bodies = [e for e in seen if any(p.body is not None and p.body.fused for p in e.people)]
    assert len(bodies) >= 3 and sent == len(bodies) == len(receiver.frames)
    for frame, est in zip(receiver.frames, bodies, strict=True):
        assert frame["/VMC/Ext/T"][0] == pytest.approx(est.timestamp, abs=1e-4)
        fused = next(p.body for p in est.people if p.body is not None and p.body.fused)
        with torch.no_grad():
            rest = body.joints_rotmat(torch.tensor(fused.betas[None]).float(), torch.eye(3).repeat(1, 24, 1, 1)).joints[0].numpy()
        offsets = (rest - rest[[max(p, 0) for p in SMPL_PARENTS]]) * np.array([-1.0, 1.0, 1.0])
        rebuilt = forward_kinematics(frame["/VMC/Ext/Root/Pos"], frame["bones"], offsets)
        assert np.abs(rebuilt - fused.joints).max() < 0.01


@pytest.mark.slow
def test_headless_run_streams_json(tmp_path: Path):
    import main

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10.0)
    url = f"json://127.0.0.1:{receiver.getsockname()[1]}"
    try:
        assert main.main(["--headless", "--frames", "4", "--detector", "fake", "--stream", url]) == 0
        records = [json.loads(receiver.recvfrom(65536)[0]) for _ in range(4)]
    finally:
        receiver.close()
    assert [r["frame"] for r in records] == [0, 1, 2, 3]
    people = [p for r in records for p in r["people"]]
    assert people and all(len(p["keypoints3d"]) == 17 for p in people)
    assert any(p["joints"] is not None and len(p["joints"]) == 24 for p in people)


def test_bad_stream_url_is_an_error_line_before_any_model_loads(capsys):
    import main

    start = time.monotonic()
    assert main.main(["--headless", "--stream", "udp://127.0.0.1:9000"]) == main.EXIT_USER_ERROR
    assert time.monotonic() - start < 3.0
    err = capsys.readouterr().err
    assert err.startswith("error: --stream 'udp://127.0.0.1:9000': expected vmc://HOST[:PORT]")


def test_a_body_that_cannot_be_encoded_is_dropped_not_raised(body, caplog):
    est = sequence(body, n=1)[0]
    est.people[1].body.pose = est.people[1].body.pose[:5]  # a malformed body: 5 joint rotations, not 23
    streamer = Streamer(StreamTarget("vmc", "127.0.0.1", 9))
    try:
        with caplog.at_level(logging.WARNING, logger="recording.streaming"):
            assert not streamer.send(est) and not streamer.send(est)
    finally:
        streamer.close()
    assert (streamer.sent, streamer.dropped) == (0, 2)
    assert len([r for r in caplog.records if "cannot encode" in r.message]) == 1
