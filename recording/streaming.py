"""Live streaming of the bodies to other programs over UDP: VMC, plain OSC or JSON.

Nothing is sent unless asked for: a ``[streaming]`` table (or several ``[[streaming]]`` tables)
in the room file, or ``--stream FORMAT://HOST:PORT`` on the command line::

    [streaming]
    format = "vmc"          # "vmc" (VMC protocol, an avatar), "osc" or "json" (plain joints, everyone)
    host = "192.168.1.20"   # where to send (required: nothing is sent anywhere else)
    port = 39539            # required for osc and json; vmc defaults to 39539 (the VMC receivers' port)
    person = 2              # the track id to send (default: vmc the first person with a body, osc/json everyone)
    rate = 30               # at most this many datagrams per second (default 0: one per frame-set)
    enabled = true          # false keeps the table but sends nothing

A :class:`Streamer` is a pipeline subscriber: one datagram per frame-set, sent with a
non-blocking ``sendto`` on the pipeline's thread (about 0.5 ms); a datagram the system refuses is
dropped and counted (the first failure is logged), so sending never stalls the pipeline.

**vmc** (https://protocol.vmc.info, the Performer side): one OSC bundle per frame-set holding
``/VMC/Ext/OK 1``, ``/VMC/Ext/T <t>``, ``/VMC/Ext/Root/Pos "root" 0 0 0 0 0 0 1`` and one
``/VMC/Ext/Bone/Pos <bone> px py pz qx qy qz qw`` per SMPL joint (:data:`VMC_BONES`), for one
person. Unity's frame is left-handed and Y up; ours is right-handed and Z up:

- world: Unity ``(X, Y, Z) = (x, z, y)`` (``WORLD_TO_UNITY``, a reflection, so handedness flips);
  the root sits at our world origin with no rotation, so the avatar stands where the person does.
- bodies: SMPL's body frame (x to the body's left, y up, z forward) becomes the avatar's (X to its
  right, Y up, Z forward) by mirroring x (``MIRROR_X``). A local rotation ``R`` becomes
  ``MIRROR_X R MIRROR_X`` (quaternion ``(qx, -qy, -qz, qw)``); the Hips' rotation is the body's
  orientation ``WORLD_TO_UNITY orient MIRROR_X``. Identity rotations are SMPL's rest pose
  (T-pose, as a normalized VRM avatar's rest), so a receiver applies them as local rotations.
- positions: Hips carries the pelvis in Unity world metres; every other bone its rest offset from
  its parent in the parent's frame, ``MIRROR_X (J_rest[k] - J_rest[parent])`` (the person's
  shape), so forward kinematics over the bones rebuilds our 24 world joints exactly.

**osc** (everyone, or ``person``): one bundle per frame-set: ``/frame t index count``, and per
person ``/person/<id>/joints`` (72 floats: :data:`SMPL_JOINT_NAMES` x, y, z, world metres, Z up)
when the person has a world body and ``/person/<id>/keypoints3d`` (68 floats: COCO-17 x, y, z,
confidence) when triangulated.

**json**: one UTF-8 datagram per frame-set ``{"format_version": 1, "t", "frame", "people": [{"id",
"joints": [[x, y, z] x 24] | null, "rotations": [[qx, qy, qz, qw] x 24] | null, "keypoints3d":
[[x, y, z, c] x 17] | null}]}``: world metres (Z up, 0.1 mm), ``t`` seconds, SMPL joint order, ``rotations``
SMPL's local rotations (the first: body to world) as quaternions; null for what is not known.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from pythonosc.parsing import osc_types
from scipy.spatial.transform import Rotation

from core.errors import AppError
from core.tomlfile import read_toml
from core.types import BodyEstimate, FrameBody, Person
from engine.body.model_file import SMPL_PARENTS

log = logging.getLogger(__name__)

FORMATS = ("vmc", "osc", "json")
FIELDS = ("format", "host", "port", "person", "rate", "enabled")
VMC_PORT = 39539
MAX_DATAGRAM = 65000  # bytes; a bigger frame-set (dozens of people) is dropped and counted
JSON_FORMAT_VERSION = 1

# Unity HumanBodyBones for the SMPL joints, in SMPL order (same tree: SMPL's collar is Unity's
# Shoulder, its shoulder Unity's UpperArm; its hand joint, at the knuckles, the middle finger's base).
VMC_BONES: tuple[str, ...] = (
    "Hips", "LeftUpperLeg", "RightUpperLeg", "Spine", "LeftLowerLeg", "RightLowerLeg", "Chest", "LeftFoot",
    "RightFoot", "UpperChest", "LeftToes", "RightToes", "Neck", "LeftShoulder", "RightShoulder", "Head",
    "LeftUpperArm", "RightUpperArm", "LeftLowerArm", "RightLowerArm", "LeftHand", "RightHand",
    "LeftMiddleProximal", "RightMiddleProximal",
)  # fmt: skip
WORLD_TO_UNITY = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # ours (Z up) -> Unity (Y up)
MIRROR_X = np.diag([-1.0, 1.0, 1.0])  # SMPL body frame (x: the body's left) <-> Unity avatar (X: its right)


class StreamingError(AppError):
    """A streaming target (room file table or --stream URL) is wrong or cannot be used."""


@dataclass(frozen=True)
class StreamTarget:
    """Where and what to stream. person: a track id (None: see the module docstring); rate: at
    most this many datagrams per second (0: one per frame-set)."""

    format: str
    host: str
    port: int
    person: int | None = None
    rate: float = 0.0

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.format}://{host}:{self.port}"


# configuration


def parse_stream_url(text: str, where: str = "--stream") -> StreamTarget:
    """``vmc://HOST[:PORT]``, ``osc://HOST:PORT`` or ``json://HOST:PORT`` (``[::1]`` for IPv6)."""
    parts = urlsplit(text.strip())
    fmt = parts.scheme.lower()
    if fmt not in FORMATS or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise StreamingError(f"{where} {text!r}: expected vmc://HOST[:PORT], osc://HOST:PORT or json://HOST:PORT")
    try:
        port = parts.port
    except ValueError as exc:
        raise StreamingError(f"{where} {text!r}: the port must be a number from 1 to 65535") from exc
    return _target({"format": fmt, "host": parts.hostname, "port": port}, where)


def parse_streaming(data: dict[str, Any], where: str) -> list[StreamTarget]:
    """The enabled targets of a parsed room file's ``[streaming]`` / ``[[streaming]]`` ([] without)."""
    tables = data.get("streaming", [])
    tables = [tables] if isinstance(tables, dict) else tables
    if not isinstance(tables, list):
        raise StreamingError(f"{where}: 'streaming' must be a [streaming] table or [[streaming]] tables")
    targets = []
    for i, table in enumerate(tables):
        here = f"{where}: [streaming]" + (f" #{i + 1}" if len(tables) > 1 else "")
        if not isinstance(table, dict):
            raise StreamingError(f"{here} must be a table")
        unknown = [k for k in table if k not in FIELDS]
        if unknown:
            raise StreamingError(f"{here}: unknown field {unknown[0]!r} (known: {', '.join(FIELDS)})")
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise StreamingError(f"{here}: field 'enabled' must be true or false")
        target = _target(table, here)
        if enabled:
            targets.append(target)
    return targets


def load_streaming(path: str | Path | None) -> list[StreamTarget]:
    """The streaming targets of the room file at ``path`` (None: no room file, no targets)."""
    if path is None:
        return []
    return parse_streaming(read_toml(path, "room file", StreamingError), f"room file {path}")


def stream_targets(room_file: str | Path | None, urls: Sequence[str] = ()) -> list[StreamTarget]:
    """The room file's targets and those of ``--stream`` URLs, all checked (StreamingError)."""
    return load_streaming(room_file) + [parse_stream_url(url) for url in urls]


def _target(table: dict[str, Any], where: str) -> StreamTarget:
    fmt = table.get("format")
    if fmt not in FORMATS:
        raise StreamingError(f"{where}: field 'format' must be one of {', '.join(FORMATS)}, not {fmt!r}")
    host = table.get("host")
    if not isinstance(host, str) or not host.strip() or any(c.isspace() for c in host.strip()):
        raise StreamingError(f"{where}: field 'host' must be a host name or address, not {host!r}")
    port = table.get("port", VMC_PORT if fmt == "vmc" else None)
    if port is None:
        raise StreamingError(f"{where}: field 'port' is required for {fmt}")
    if not _integer(port) or not 0 < port < 65536:
        raise StreamingError(f"{where}: field 'port' must be a number from 1 to 65535, not {port!r}")
    person = table.get("person")
    if person is not None and (not _integer(person) or person < 0):
        raise StreamingError(f"{where}: field 'person' must be a track id (a whole number), not {person!r}")
    rate = table.get("rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or not 0 <= rate <= 1000:
        raise StreamingError(f"{where}: field 'rate' must be datagrams per second from 0 (every frame-set) to 1000")
    return StreamTarget(fmt, host.strip(), int(port), person, float(rate))


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# geometry (pure)


def matrix_to_quaternion(rotations: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` to unit quaternions ``[..., 4]`` = (x, y, z, w), w >= 0 (scipy)."""
    m = np.asarray(rotations, dtype=np.float64)
    return Rotation.from_matrix(m.reshape(-1, 3, 3)).as_quat(canonical=True).reshape(*m.shape[:-2], 4)


def body_chain(rotations: np.ndarray) -> np.ndarray:
    """Local rotations ``[24, 3, 3]`` (the root's: body to world) to each joint's body-to-world ``[24, 3, 3]``."""
    chain = np.empty_like(rotations)
    chain[0] = rotations[0]
    for k in range(1, len(SMPL_PARENTS)):
        chain[k] = chain[SMPL_PARENTS[k]] @ rotations[k]
    return chain


def vmc_pose(body: FrameBody) -> tuple[np.ndarray, np.ndarray]:
    """A fused body as VMC bones in Unity's frame: local positions ``[24, 3]`` (Hips: the pelvis in
    Unity world metres; others: the rest offset from the parent, in the parent's frame) and local
    rotations ``[24, 4]`` (x, y, z, w), in :data:`VMC_BONES` order."""
    assert body.orient is not None and body.pose is not None and body.joints is not None
    rotations = np.concatenate([body.orient[None], body.pose]).astype(np.float64)
    joints = np.asarray(body.joints, dtype=np.float64)
    parents = np.array(SMPL_PARENTS[1:])
    # The rest offsets, from the posed joints: the joints are the body model's forward kinematics.
    chain = body_chain(rotations)
    offsets = np.einsum("kji,kj->ki", chain[parents], joints[1:] - joints[parents])
    positions = np.concatenate([(WORLD_TO_UNITY @ joints[0])[None], offsets @ MIRROR_X])
    local = MIRROR_X @ rotations @ MIRROR_X
    local[0] = WORLD_TO_UNITY @ rotations[0] @ MIRROR_X
    return positions, matrix_to_quaternion(local)


# datagrams


def _message(address: str, *args: float | int | str) -> bytes:
    """One OSC message: strings as ``s``, whole numbers as ``i``, the rest as 32-bit floats ``f``."""
    tags = "".join("s" if isinstance(a, str) else "i" if isinstance(a, int) else "f" for a in args)
    return b"".join([osc_types.write_string(address), osc_types.write_string("," + tags), *map(_argument, args)])


def _argument(value: float | int | str) -> bytes:
    if isinstance(value, str):
        return osc_types.write_string(value)
    return osc_types.write_int(value) if isinstance(value, int) else osc_types.write_float(value)


def _bundle(messages: list[bytes]) -> bytes:
    """An OSC bundle to be applied at once (python-osc's wire encoding, without its object round trip)."""
    sized = [osc_types.write_int(len(m)) + m for m in messages]
    return b"".join([b"#bundle\x00", osc_types.write_date(osc_types.IMMEDIATELY), *sized])


def _floats(array: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(array, dtype=np.float64).reshape(-1)]


def vmc_datagram(body: FrameBody, t: float) -> bytes:
    """One VMC bundle: OK, time, root and the 24 bones of ``body`` (a fused body)."""
    positions, quaternions = vmc_pose(body)
    messages = [_message("/VMC/Ext/OK", 1), _message("/VMC/Ext/T", float(t)),
                _message("/VMC/Ext/Root/Pos", "root", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)]  # fmt: skip
    for name, p, q in zip(VMC_BONES, positions, quaternions, strict=True):
        messages.append(_message("/VMC/Ext/Bone/Pos", name, *_floats(p), *_floats(q)))
    return _bundle(messages)


def osc_datagram(estimate: BodyEstimate, people: list[Person]) -> bytes:
    """One plain OSC bundle: ``/frame`` and each person's joints and 3D keypoints."""
    messages = [_message("/frame", float(estimate.timestamp), int(estimate.frameset.index), len(people))]
    for person in people:
        if person.body is not None and person.body.joints is not None:
            messages.append(_message(f"/person/{person.id}/joints", *_floats(person.body.joints)))
        if person.keypoints3d is not None:
            messages.append(_message(f"/person/{person.id}/keypoints3d", *_floats(np.nan_to_num(person.keypoints3d))))
    return _bundle(messages)


def json_datagram(estimate: BodyEstimate, people: list[Person]) -> bytes:
    """One JSON datagram (see the module docstring)."""
    record = {"format_version": JSON_FORMAT_VERSION, "t": round(float(estimate.timestamp), 6),
              "frame": int(estimate.frameset.index), "people": [_json_person(p) for p in people]}  # fmt: skip
    return json.dumps(record, separators=(",", ":"), allow_nan=False).encode()


def _json_person(person: Person) -> dict[str, object]:
    body = person.body if person.body is not None and person.body.fused else None
    joints = rotations = None
    if body is not None and body.orient is not None and body.pose is not None and body.joints is not None:
        joints = _rounded(body.joints, 4)
        rotations = _rounded(matrix_to_quaternion(np.concatenate([body.orient[None], body.pose])), 6)
    keypoints = None if person.keypoints3d is None else _rounded(person.keypoints3d, 4)
    return {"id": int(person.id), "joints": joints, "rotations": rotations, "keypoints3d": keypoints}


def _rounded(array: np.ndarray, digits: int) -> list[list[float | None]]:
    return [[round(v, digits) if math.isfinite(v) else None for v in row] for row in np.asarray(array, np.float64).tolist()]


# sending


class Streamer:
    """Sends every result it is given (``send``, a pipeline subscriber) to one target.
    ``sent``, ``dropped`` (refused by the system or too big) and ``skipped`` (rate limit, or
    nobody to send) count datagrams. ``clock``: seconds, for the rate limit."""

    def __init__(self, target: StreamTarget, clock: Callable[[], float] = time.monotonic) -> None:
        self.target, self.clock = target, clock
        try:
            family, _, _, _, address = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)[0]
        except (OSError, UnicodeError) as exc:
            raise StreamingError(f"streaming to {target.describe()}: unknown host ({exc})") from exc
        self.address = address
        self.socket = socket.socket(family, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        self.sent = self.dropped = self.skipped = 0
        self._next_due = -math.inf
        self._warned = self._closed = False

    def send(self, estimate: BodyEstimate) -> bool:
        """Send ``estimate`` now unless the rate limit says wait; True when a datagram went out."""
        now = self.clock()
        interval = 1.0 / self.target.rate if self.target.rate else 0.0
        if now < self._next_due - 0.1 * interval:  # a frame-set a little early (jitter) still goes
            self.skipped += 1
            return False
        try:
            data = self.datagram(estimate)
        except Exception as exc:  # a malformed body must not stop the pipeline: dropped, said once
            return self._drop(f"cannot encode a frame-set ({type(exc).__name__}: {exc})")
        if data is None:
            self.skipped += 1
            return False
        due = self._next_due + interval  # keeps the average rate; after a pause, restarts from now
        self._next_due = due if due > now else now + interval
        return self._sendto(data)

    def datagram(self, estimate: BodyEstimate) -> bytes | None:
        """What ``estimate`` becomes for this target (None: nobody to send)."""
        people = [p for p in estimate.people if self.target.person is None or p.id == self.target.person]
        if self.target.format == "vmc":
            body = next((p.body for p in people if p.body is not None and p.body.fused and p.body.joints is not None), None)
            return None if body is None else vmc_datagram(body, estimate.timestamp)
        return (osc_datagram if self.target.format == "osc" else json_datagram)(estimate, people)

    def _sendto(self, data: bytes) -> bool:
        try:
            if len(data) > MAX_DATAGRAM:
                raise OSError(f"datagram of {len(data)} bytes is over {MAX_DATAGRAM}")
            self.socket.sendto(data, self.address)
        except OSError as exc:  # full buffer, unreachable network, closed: drop it, never wait
            return self._drop(str(exc))
        self.sent += 1
        return True

    def _drop(self, why: str) -> bool:
        self.dropped += 1
        if not self._warned and not self._closed:  # a send racing with close is dropped quietly
            self._warned = True
            log.warning("streaming to %s: dropping datagrams (%s); counting them from now on", self.target.describe(), why)
        return False

    def close(self) -> None:
        self._closed = True
        self.socket.close()


class Streams:
    """Several streamers behind one pipeline subscriber (``send``)."""

    def __init__(self, streamers: list[Streamer]) -> None:
        self.streamers = streamers

    def send(self, estimate: BodyEstimate) -> None:
        for streamer in self.streamers:
            streamer.send(estimate)

    def describe(self) -> str:
        return ", ".join(s.target.describe() for s in self.streamers)

    def close(self) -> None:
        for streamer in self.streamers:
            streamer.close()


def open_streams(targets: list[StreamTarget]) -> Streams | None:
    """Sockets for ``targets`` (None when there are none); StreamingError for a host that does not resolve."""
    streamers: list[Streamer] = []
    try:
        for target in targets:
            streamers.append(Streamer(target))
    except BaseException:
        Streams(streamers).close()
        raise
    return Streams(streamers) if streamers else None
