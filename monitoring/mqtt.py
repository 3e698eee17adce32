"""Alerts, people and health to an MQTT broker (paho-mqtt 2.x), read from ``[monitoring.mqtt]``.

    [monitoring.mqtt]
    host = "broker.local"
    port = 1883
    username = "monitor"
    password_env = "HEATFORMER_MQTT_PASSWORD"   # or password = "..." (never shown in messages)
    topic_prefix = "heatformer"
    [monitoring.mqtt.tls]                        # optional: TLS (system CAs unless ca_file)
    ca_file = "ca.crt"

Topics (the room name made one topic level): ``{prefix}/{room}/events`` (every event, QoS ``qos``),
``.../events/last`` (the last event, retained), ``.../people`` (retained, at most 2 a second) and
``.../health`` (retained; ``{"online": false}`` is the last will, ``{"online": true, ...}`` is sent
on every connect).

Nothing here blocks the caller: :class:`MqttPublisher` keeps its own bounded outbox of event records
(oldest dropped and counted when full) and a sender thread hands at most ``window`` of them at a
time to paho. paho keeps what it was handed (QoS > 0) across reconnects and sends it again until the
broker acknowledges it (PUBACK, ``on_publish``); what waits in the outbox goes out after the
reconnect, once those paho sends again are acknowledged (so the order holds). Events outlive a
broker restart, not a restart of this process; with ``qos = 0`` nothing is acknowledged or sent again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from monitoring.config import MonitorError, check_fields

log = logging.getLogger(__name__)

FIELDS = ("host", "port", "username", "password", "password_env", "client_id", "topic_prefix", "qos", "keepalive", "tls")
TLS_FIELDS = ("ca_file", "cert_file", "key_file", "insecure")


@dataclass(frozen=True)
class MqttTls:
    """TLS to the broker: CA file (None: the system's), client certificate and key (both or none)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False  # do not check the broker's host name against its certificate


@dataclass(frozen=True)
class MqttSettings:
    """Where and how to publish. ``password`` never shows in ``repr``; ``password_env`` is the name
    of the environment variable it was read from, if any."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_env: str | None = None
    client_id: str = ""  # "": a random one
    topic_prefix: str = "heatformer"
    qos: int = 1
    keepalive: int = 30
    tls: MqttTls | None = None


def parse_mqtt(table: dict[str, Any], where: str, base_dir: Path | None = None) -> MqttSettings:
    """The settings of a ``[monitoring.mqtt]`` table; ``where`` names the room file for messages and
    relative TLS file names are taken from ``base_dir`` (the room file's folder)."""
    here = f"{where}: [monitoring.mqtt]"
    check_fields(table, FIELDS, here)
    name = f"{where}: field 'monitoring.mqtt."
    host = _text(table.get("host"), name + "host'")
    if "://" in host or any(c.isspace() for c in host) or "/" in host:
        raise MonitorError(f"{name}host' is {host!r}; expected a host name or address only (no scheme, path or spaces)")
    username = _optional_text(table.get("username"), name + "username'")
    password = _password(table, name)
    if password is not None and username is None:
        raise MonitorError(f"{name}password' is given without 'username' (MQTT needs a user name with a password)")
    return MqttSettings(
        host=host,
        port=_integer(table.get("port", 1883), name + "port'", 1, 65535),
        username=username,
        password=password,
        password_env=table.get("password_env"),
        client_id=_optional_text(table.get("client_id"), name + "client_id'") or "",
        topic_prefix=_prefix(table.get("topic_prefix", "heatformer"), name + "topic_prefix'"),
        qos=_integer(table.get("qos", 1), name + "qos'", 0, 2),
        keepalive=_integer(table.get("keepalive", 30), name + "keepalive'", 5, 65535),
        tls=_tls(table["tls"], where, base_dir) if "tls" in table else None,
    )


def topic_level(name: str) -> str:
    """``name`` as one MQTT topic level: ``/``, ``+``, ``#`` and unprintable characters become ``_``."""
    text = "".join("_" if c in "/+#" or not c.isprintable() else c for c in name.strip())
    return text or "_"


class MqttPublisher:
    """Publishes one room's events, people and health; every method returns at once.

    window: events handed to paho at a time (unacknowledged); outbox_size: events kept beyond that
    while the broker is away; people_interval_s: the least time between two people messages (the
    newest waiting one is sent, those between are dropped and counted).
    """

    def __init__(self, settings: MqttSettings, room: str, *, outbox_size: int = 10_000, window: int = 100,
                 people_interval_s: float = 0.5, reconnect_delay_s: tuple[int, int] = (1, 30)) -> None:  # fmt: skip
        self.settings = settings
        self.room = room
        base = f"{settings.topic_prefix}/{topic_level(room)}"
        self.topics = {"events": f"{base}/events", "last": f"{base}/events/last", "people": f"{base}/people",
                       "health": f"{base}/health"}  # fmt: skip
        self._outbox_size, self._window, self._people_interval = outbox_size, window, people_interval_s
        self._cond = threading.Condition()
        self._outbox: deque[bytes] = deque()  # event payloads not yet handed to paho
        self._inflight: dict[int, str] = {}  # mid -> kind ("events", "last", "people", "health")
        self._acked: set[int] = set()  # mids acknowledged (on_publish), not yet matched
        self._people: bytes | None = None  # the newest people payload not yet sent
        self._people_next = 0.0
        self._health: dict[str, Any] = {}
        self._health_due = False
        self._connected = False
        self._hold = False  # after a reconnect: new events wait until paho's resent ones are acknowledged
        self._stopping = False
        self._last_error: str | None = None
        self._counts = dict.fromkeys(("events_queued", "events_sent", "events_dropped", "people_sent", "people_skipped",
                                      "health_sent", "connects", "disconnects"), 0)  # fmt: skip
        self._client = self._make_client(reconnect_delay_s)
        self._sender = threading.Thread(target=self._run, name=f"mqtt-sender-{topic_level(room)}", daemon=True)
        self._sender.start()
        self._client.connect_async(settings.host, settings.port, settings.keepalive)
        self._client.loop_start()

    # -- what the monitor calls (any thread; never blocks on the network) --

    def event(self, record: dict[str, Any]) -> None:
        """Queue one event record (``Event.to_record()``) for ``.../events`` and ``.../events/last``."""
        payload = _json(record)
        with self._cond:
            self._check_open()
            if len(self._outbox) >= self._outbox_size:
                self._outbox.popleft()
                self._counts["events_dropped"] += 1
                log.warning("MQTT outbox full (%d events): dropped the oldest event", self._outbox_size)
            self._outbox.append(payload)
            self._counts["events_queued"] += 1
            self._cond.notify_all()

    def people(self, t: float, people: list[dict[str, Any]]) -> None:
        """The people now in the room (retained on ``.../people``, at most one per interval)."""
        payload = _json({"t": round(t, 3), "people": people})
        with self._cond:
            self._check_open()
            if self._people is not None:
                self._counts["people_skipped"] += 1
            self._people = payload
            self._cond.notify_all()

    def health(self, record: dict[str, Any]) -> None:
        """The monitor's health (retained on ``.../health`` with ``"online": true``)."""
        with self._cond:
            self._check_open()
            self._health = dict(record)
            self._health_due = True
            self._cond.notify_all()

    def close(self, timeout: float = 2.0) -> None:
        """Send what can be sent within ``timeout`` s, mark the room offline and disconnect."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._stopping:
                return
            self._cond.wait_for(lambda: not self._connected or self._idle(), timeout)
            self._stopping = True
            self._cond.notify_all()
            left = len(self._outbox) + list(self._inflight.values()).count("events")
        self._sender.join(max(0.0, deadline - time.monotonic()))
        if left:
            log.warning("MQTT: closed with %d events not acknowledged by the broker", left)
        if self._connected:
            info = self._client.publish(self.topics["health"], _json({"online": False, "room": self.room}), 1, True)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def last_error(self) -> str | None:
        """The last connection problem (one line, no password), None while all is well."""
        return self._last_error

    @property
    def stats(self) -> dict[str, int]:
        """Counters (events queued, sent = acknowledged, dropped; people sent and skipped; ...) and
        ``outbox``: the events not yet acknowledged."""
        with self._cond:
            pending = len(self._outbox) + list(self._inflight.values()).count("events")
            return {**self._counts, "outbox": pending}

    # -- paho side --

    def _make_client(self, reconnect_delay_s: tuple[int, int]) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id, protocol=MQTTProtocolVersion.MQTTv311,
                             clean_session=True)  # fmt: skip
        client.enable_logger(logging.getLogger(f"{__name__}.paho"))
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls is not None:
            client.tls_set(_path(s.tls.ca_file), _path(s.tls.cert_file), _path(s.tls.key_file))
            client.tls_insecure_set(s.tls.insecure)
        client.will_set(self.topics["health"], _json({"online": False, "room": self.room}), qos=1, retain=True)
        client.reconnect_delay_set(*reconnect_delay_s)
        client.max_inflight_messages_set(2 * self._window + 10)  # the window bounds it; paho never holds back
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _on_connect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._error(f"the MQTT broker {self._address} refused the connection: {reason}")
            return
        log.info("MQTT: connected to %s", self._address)
        with self._cond:
            self._connected, self._health_due, self._last_error = True, True, None
            self._counts["connects"] += 1
            self._cond.notify_all()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        self._error(f"cannot reach the MQTT broker {self._address}")

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self._connected and not self._stopping:  # the error first: whoever sees 'not connected' sees why
            self._error(f"lost the connection to the MQTT broker {self._address}: {reason}")
        with self._cond:
            self._counts["disconnects"] += self._connected
            self._connected = False
            self._hold = "events" in self._inflight.values()
            self._cond.notify_all()

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any, _props: Any) -> None:
        with self._cond:  # paho holds its own lock here: never call paho while holding ours
            self._acked.add(mid)
            self._cond.notify_all()

    def _error(self, message: str) -> None:
        if message != self._last_error:
            log.warning("MQTT: %s", message)
        self._last_error = message

    @property
    def _address(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    # -- the sender thread --

    def _run(self) -> None:
        while True:
            with self._cond:
                work = self._take()
                while not work and not self._stopping:
                    self._cond.wait(self._wait_s())
                    work = self._take()
                if not work:
                    return
            for kind, topic, payload, retain in work:
                info = self._client.publish(topic, payload, self.settings.qos, retain)
                with self._cond:
                    self._inflight[info.mid] = kind
                    self._match_acks()

    def _take(self) -> list[tuple[str, str, bytes, bool]]:
        """What to publish now (called holding the lock)."""
        self._match_acks()
        if not self._connected:
            return []
        work = []
        if self._health_due:
            self._health_due = False
            work.append(("health", self.topics["health"], _json({"online": True, "room": self.room, **self._health}), True))
        in_flight = list(self._inflight.values()).count("events")
        self._hold = self._hold and in_flight > 0
        free = 0 if self._hold else self._window - in_flight
        events = [self._outbox.popleft() for _ in range(min(free, len(self._outbox)))]
        work += [("events", self.topics["events"], payload, False) for payload in events]
        if events:
            work.append(("last", self.topics["last"], events[-1], True))
        if self._people is not None and time.monotonic() >= self._people_next:
            work.append(("people", self.topics["people"], self._people, True))
            self._people, self._people_next = None, time.monotonic() + self._people_interval
        return work

    def _match_acks(self) -> None:
        for mid in [m for m in self._acked if m in self._inflight]:
            self._acked.discard(mid)
            kind = self._inflight.pop(mid)
            if kind in ("events", "people", "health"):
                self._counts[f"{kind}_sent"] += 1

    def _wait_s(self) -> float | None:
        if self._people is not None and self._connected:
            return max(0.0, self._people_next - time.monotonic())
        return None

    def _idle(self) -> bool:
        self._match_acks()
        return not self._outbox and not self._inflight and self._people is None and not self._health_due

    def _check_open(self) -> None:
        if self._stopping:
            raise RuntimeError(f"the MQTT publisher of room {self.room!r} is closed")


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=_plain).encode()


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as plain numbers and lists (non-finite numbers as null)."""
    if hasattr(value, "tolist"):
        plain = value.tolist()
        return None if isinstance(plain, float) and not math.isfinite(plain) else plain
    raise TypeError(f"cannot publish a {type(value).__name__} as JSON")


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _password(table: dict[str, Any], name: str) -> str | None:
    if "password" in table and "password_env" in table:
        raise MonitorError(f"{name}password' and 'password_env' are both given; give one")
    if "password" in table:
        if not isinstance(table["password"], str):
            raise MonitorError(f"{name}password' must be text")
        return table["password"]
    variable = _optional_text(table.get("password_env"), name + "password_env'")
    if variable is None:
        return None
    if variable not in os.environ:
        raise MonitorError(f"{name}password_env': the environment variable {variable!r} is not set")
    return os.environ[variable]


def _tls(table: object, where: str, base_dir: Path | None) -> MqttTls:
    if not isinstance(table, dict):
        raise MonitorError(f"{where}: field 'monitoring.mqtt.tls' must be a table ([monitoring.mqtt.tls])")
    check_fields(table, TLS_FIELDS, f"{where}: [monitoring.mqtt.tls]")
    name = f"{where}: field 'monitoring.mqtt.tls."
    files = {key: _file(table.get(key), name + key + "'", base_dir) for key in TLS_FIELDS[:3]}
    if (files["cert_file"] is None) != (files["key_file"] is None):
        raise MonitorError(f"{name}cert_file' and 'key_file' go together: give both or neither")
    insecure = table.get("insecure", False)
    if not isinstance(insecure, bool):
        raise MonitorError(f"{name}insecure' must be true or false")
    return MqttTls(files["ca_file"], files["cert_file"], files["key_file"], insecure)


def _file(value: object, name: str, base_dir: Path | None) -> Path | None:
    text = _optional_text(value, name)
    if text is None:
        return None
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise MonitorError(f"{name}: no such file {str(path)!r}")
    return path


def _prefix(value: object, name: str) -> str:
    prefix = _text(value, name)
    levels = prefix.split("/")
    if prefix.startswith("$") or any(not level or set(level) & set("+#\0") for level in levels):
        raise MonitorError(f"{name} is {prefix!r}; expected topic levels joined by '/' without '+', '#', "
                           "empty levels or a leading '$'")  # fmt: skip
    return prefix


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MonitorError(f"{name} must be non-empty text" + ("" if value is None else f", not {value!r}"))
    return value.strip()


def _optional_text(value: object, name: str) -> str | None:
    return None if value is None else _text(value, name)


def _integer(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MonitorError(f"{name} is {value!r}; expected a whole number from {low} to {high}")
    return value
