"""monitoring.mqtt against a real Mosquitto broker that each test starts on a free localhost port."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.types import Event
from monitoring.config import MonitorError
from monitoring.mqtt import MqttPublisher, MqttSettings, parse_mqtt, topic_level

ROOT = Path(__file__).resolve().parents[1]
MOSQUITTO = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.path.exists(p)), None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
needs_broker = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (tools/system_deps.sh installs it)")
SECRET = "pa55-w0rd-sekrit"


class Broker:
    """One mosquitto process on a free 127.0.0.1 port, with persistence (sessions outlive a restart)."""

    def __init__(self, folder: Path, password_file: Path | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.folder = folder
        lines = [f"listener {self.port} 127.0.0.1", f"persistence true\npersistence_location {folder}/",
                 f"log_dest file {folder}/mosquitto.log"]  # fmt: skip
        lines += [f"allow_anonymous false\npassword_file {password_file}"] if password_file else ["allow_anonymous true"]
        lines += ["user root"] if os.geteuid() == 0 else []  # mosquitto run as root drops to 'mosquitto' otherwise
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert MOSQUITTO is not None
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"mosquitto exited: {self.process.stderr.read().decode() if self.process.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        pytest.fail("mosquitto did not open its port within 5 s")

    def stop(self) -> None:
        """A clean stop (SIGTERM): mosquitto saves its sessions."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)
        if number == signal.SIGKILL:
            self.process.wait(5)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (tools/system_deps.sh installs it)")
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


class Subscriber:
    """A paho test client that records (arrival time, topic, JSON payload, retain flag)."""

    def __init__(self, port: int, topics: list[str], client_id: str = "", clean: bool = True, **auth: str) -> None:
        self.messages: queue.Queue[tuple[float, str, Any, bool]] = queue.Queue()
        self.subscribed = queue.Queue[int]()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
        if auth:
            self.client.username_pw_set(auth["username"], auth["password"])
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *_: self.subscribed.put(1)
        self.client.on_message = lambda _c, _u, m: self.messages.put(
            (time.monotonic(), m.topic, json.loads(m.payload), bool(m.retain))
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.connect_async("127.0.0.1", port, 10)
        self.client.loop_start()
        self.subscribed.get(timeout=5)

    def get(self, timeout: float = 3.0) -> tuple[float, str, Any, bool]:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no message within {timeout} s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def record(alert: int, severity: str = "alarm") -> dict[str, object]:
    state = {"posture": "lying", "pelvis_z": 0.18, "position": [1.25, 2.5]}
    return Event("fall", "raised", severity, 12.5 + alert, "2026-11-28T14:00:00+01:00", alert, 1, "bed", state).to_record()


def publisher(port: int, room: str = "ward-3", **kwargs: Any) -> MqttPublisher:
    settings = kwargs.pop("settings", None) or MqttSettings("127.0.0.1", port)
    wait = kwargs.pop("wait", True)
    pub = MqttPublisher(settings, room, reconnect_delay_s=(1, 1), **kwargs)
    if wait:
        wait_for(lambda: pub.connected, 5, "the publisher to connect")
    return pub


@needs_broker
def test_event_reaches_a_subscriber_within_200_ms(broker: Broker) -> None:
    sub = Subscriber(broker.port, ["heatformer/ward-3/events"])
    pub = publisher(broker.port)
    latencies = []
    for alert in range(1, 21):
        start = time.monotonic()
        pub.event(record(alert))
        arrived, topic, payload, retained = sub.get(1.0)
        latencies.append(arrived - start)
        assert (topic, payload, retained) == ("heatformer/ward-3/events", record(alert), False)
    print(f"MQTT event latency: median {sorted(latencies)[10] * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    assert max(latencies) < 0.2
    wait_for(lambda: pub.stats["events_sent"] == 20, 2, "20 PUBACKs")
    assert pub.stats["outbox"] == 0 and pub.stats["events_dropped"] == 0
    pub.close()
    sub.close()


@needs_broker
def test_events_published_while_the_broker_is_down_arrive_after_its_restart(broker: Broker) -> None:
    sub = Subscriber(broker.port, ["heatformer/ward-3/events"], client_id="test-persistent-sub", clean=False)
    pub = publisher(broker.port)
    pub.event(record(1))
    assert sub.get()[2]["alert"] == 1
    broker.stop()
    wait_for(lambda: not pub.connected, 5, "the publisher to see the broker go")
    assert pub.last_error is not None and "lost the connection" in pub.last_error
    start = time.monotonic()
    for alert in range(2, 7):
        pub.event(record(alert))
    assert time.monotonic() - start < 0.05  # never blocks the caller
    assert pub.stats["outbox"] == 5
    broker.start()  # same port, same persistence folder: the subscriber's session and subscription survive
    received = [sub.get(10)[2] for _ in range(5)]
    assert received == [record(alert) for alert in range(2, 7)]
    wait_for(lambda: pub.stats["outbox"] == 0, 3, "the outbox to empty")
    assert pub.stats["events_sent"] == 6 and pub.connected and pub.last_error is None
    assert sub.messages.empty()  # nothing twice
    pub.close()
    sub.close()


@needs_broker
def test_events_in_flight_when_the_broker_dies_are_sent_again(broker: Broker) -> None:
    sub = Subscriber(broker.port, ["heatformer/ward-3/events"], client_id="test-persistent-sub", clean=False)
    broker.stop()  # saves the subscriber's session: it is there again after the crash below
    broker.start()
    pub = publisher(broker.port)
    sub.subscribed.get(timeout=5)  # the subscriber is back
    broker.signal(signal.SIGSTOP)  # alive to TCP, but never answers: the events stay unacknowledged
    for alert in range(1, 6):
        pub.event(record(alert))
    wait_for(lambda: not pub._outbox, 2, "the sender to hand the events to paho")
    time.sleep(0.1)
    assert pub.stats["outbox"] == 5 and pub.stats["events_sent"] == 0 and pub.connected
    broker.signal(signal.SIGKILL)  # a crash: the sockets close, what the broker did not read is lost
    wait_for(lambda: not pub.connected, 5, "the publisher to see the crash")
    pub.event(record(6))  # waits in the outbox: after the 5 that paho sends again
    broker.start()
    received = [sub.get(10)[2] for _ in range(6)]
    assert received == [record(alert) for alert in range(1, 7)]  # paho sent them again after the reconnect
    wait_for(lambda: pub.stats["outbox"] == 0, 3, "the PUBACKs")
    assert pub.stats["events_sent"] == 6
    pub.close()
    sub.close()


@needs_broker
def test_retained_people_health_and_last_event_reach_a_late_subscriber(broker: Broker) -> None:
    pub = publisher(broker.port, room="ward 3/bed#1+")
    base = "heatformer/ward 3_bed_1_"
    wait_for(lambda: pub.stats["health_sent"] == 1, 3, "the health message of the connect")
    pub.health({"fps": 12.5, "cameras": 3})
    pub.people(4.0, [{"id": 1, "posture": "standing", "position": [1.0, 2.0, 0.0]}])
    pub.event(record(7))
    wait_for(lambda: pub.stats["people_sent"] == 1 and pub.stats["events_sent"] == 1 and pub.stats["health_sent"] == 2,
             3, "the acknowledgements")  # fmt: skip
    late = Subscriber(broker.port, [f"{base}/#"])
    got = {topic: (payload, retained) for _, topic, payload, retained in (late.get() for _ in range(3))}
    assert got == {
        f"{base}/health": ({"online": True, "room": "ward 3/bed#1+", "fps": 12.5, "cameras": 3}, True),
        f"{base}/people": ({"t": 4.0, "people": [{"id": 1, "posture": "standing", "position": [1.0, 2.0, 0.0]}]}, True),
        f"{base}/events/last": (record(7), True),
    }
    pub.close()
    _, topic, payload, _ = late.get()  # a clean close says offline too
    assert (topic, payload) == (f"{base}/health", {"online": False, "room": "ward 3/bed#1+"})
    late.close()


@needs_broker
def test_people_are_rate_limited_to_two_a_second_keeping_the_newest(broker: Broker) -> None:
    sub = Subscriber(broker.port, ["heatformer/ward-3/people"])
    pub = publisher(broker.port)
    pub.people(0.0, [])
    first = sub.get()
    for t in range(1, 10):
        pub.people(float(t), [{"id": t}])
    second = sub.get()
    assert (first[2]["t"], second[2]) == (0.0, {"t": 9.0, "people": [{"id": 9}]})
    assert 0.45 < second[0] - first[0] < 0.7
    with pytest.raises(queue.Empty):
        sub.messages.get(timeout=0.7)  # the 8 between were dropped
    assert pub.stats["people_skipped"] == 8 and pub.stats["people_sent"] == 2
    pub.close()
    sub.close()


@needs_broker
@pytest.mark.timeout(30)
def test_last_will_says_offline_when_the_process_dies(broker: Broker) -> None:
    sub = Subscriber(broker.port, ["heatformer/ward-9/health"])
    script = textwrap.dedent(f"""
        import time
        from monitoring.mqtt import MqttPublisher, MqttSettings
        pub = MqttPublisher(MqttSettings("127.0.0.1", {broker.port}, keepalive=60), "ward-9")
        while pub.stats["health_sent"] < 1:  # the online message of the connect
            time.sleep(0.01)
        pub.health({{"fps": 9.0}})
        while pub.stats["health_sent"] < 2:
            time.sleep(0.01)
        print("ready", flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        online = [sub.get()[2] for _ in range(2)]
        assert online[-1] == {"online": True, "room": "ward-9", "fps": 9.0}
        child.send_signal(signal.SIGKILL)  # no DISCONNECT packet: the broker sends the will
        killed = time.monotonic()
        arrived, _, payload, _ = sub.get(3)
        assert payload == {"online": False, "room": "ward-9"}
        assert arrived - killed < 1.0  # the socket closes with the process, well before the keepalive
    finally:
        child.kill()
        child.wait()
    sub.close()


@needs_broker
def test_no_broker_never_blocks_and_the_outbox_is_bounded(tmp_path: Path) -> None:
    unused = Broker(tmp_path)  # its port, with nothing listening
    pub = MqttPublisher(MqttSettings("127.0.0.1", unused.port), "r", outbox_size=100, reconnect_delay_s=(1, 1))
    start = time.monotonic()
    for alert in range(1000):
        pub.event(record(alert))
        pub.people(float(alert), [])
    assert time.monotonic() - start < 0.5
    assert pub.stats["outbox"] == 100 and pub.stats["events_dropped"] == 900 and pub.stats["events_queued"] == 1000
    wait_for(lambda: pub.last_error is not None, 3, "a connection error")
    assert pub.last_error == f"cannot reach the MQTT broker 127.0.0.1:{unused.port}"
    start = time.monotonic()
    pub.close(timeout=0.5)
    assert time.monotonic() - start < 2.5  # paho's reconnect wait is cut short
    with pytest.raises(RuntimeError, match="closed"):
        pub.event(record(1))


@pytest.mark.skipif(MOSQUITTO is None or MOSQUITTO_PASSWD is None, reason="mosquitto / mosquitto_passwd not installed")
def test_username_and_password_and_a_wrong_password_not_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert MOSQUITTO_PASSWD is not None
    passwords = tmp_path / "passwords"
    subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(passwords), "monitor", SECRET], check=True)
    passwords.chmod(0o600)
    broker = Broker(tmp_path, passwords)
    broker.start()
    caplog.set_level("DEBUG")
    try:
        sub = Subscriber(broker.port, ["heatformer/ward-3/events"], username="monitor", password=SECRET)
        monkeypatch.setenv("TEST_MQTT_PASSWORD", SECRET)
        table = {"host": "127.0.0.1", "port": broker.port, "username": "monitor", "password_env": "TEST_MQTT_PASSWORD"}
        good = publisher(broker.port, settings=parse_mqtt(table, "room file /x/room.toml"))
        good.event(record(3))
        assert sub.get()[2] == record(3)
        good.close()
        sub.close()
        wrong = MqttSettings("127.0.0.1", broker.port, username="monitor", password=SECRET + "x")
        bad = publisher(broker.port, settings=wrong, wait=False)
        wait_for(lambda: bad.last_error is not None, 5, "the refusal")
        assert bad.last_error == f"the MQTT broker 127.0.0.1:{broker.port} refused the connection: Not authorized"
        assert not bad.connected
        bad.close(timeout=0.2)
    finally:
        broker.stop()
    for text in (repr(wrong), str(wrong), repr(good.settings), bad.last_error, caplog.text):
        assert SECRET not in text
    assert "refused the connection" in caplog.text


def test_settings_parse_with_defaults(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("x")
    table = {"host": "broker.local", "username": "u", "password": SECRET, "tls": {"ca_file": "ca.crt"}}
    s = parse_mqtt(table, "room file /x/room.toml", tmp_path)
    assert (s.host, s.port, s.qos, s.keepalive, s.topic_prefix, s.client_id) == ("broker.local", 1883, 1, 30, "heatformer", "")
    assert s.password == SECRET and SECRET not in repr(s)
    assert s.tls is not None and s.tls.ca_file == tmp_path / "ca.crt" and not s.tls.insecure
    assert topic_level(" a/b+c#d\n") == "a_b_c_d" and topic_level("///") == "___"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "field 'monitoring.mqtt.host' must be non-empty text"),
        ({"host": "mqtt://b.local"}, "field 'monitoring.mqtt.host' is 'mqtt://b.local'"),
        ({"host": "b", "prot": 1883}, "[monitoring.mqtt]: unknown field 'prot'"),
        ({"host": "b", "port": 0}, "field 'monitoring.mqtt.port' is 0; expected a whole number from 1 to 65535"),
        ({"host": "b", "port": "1883"}, "field 'monitoring.mqtt.port' is '1883'"),
        ({"host": "b", "qos": 3}, "field 'monitoring.mqtt.qos' is 3"),
        ({"host": "b", "keepalive": True}, "field 'monitoring.mqtt.keepalive' is True"),
        ({"host": "b", "topic_prefix": "a/#"}, "field 'monitoring.mqtt.topic_prefix' is 'a/#'"),
        ({"host": "b", "topic_prefix": "a//b"}, "field 'monitoring.mqtt.topic_prefix' is 'a//b'"),
        ({"host": "b", "password": SECRET}, "field 'monitoring.mqtt.password' is given without 'username'"),
        ({"host": "b", "username": "u", "password": 5}, "field 'monitoring.mqtt.password' must be text"),
        (
            {"host": "b", "username": "u", "password": SECRET, "password_env": "X"},
            "'monitoring.mqtt.password' and 'password_env' are both",
        ),
        ({"host": "b", "username": "u", "password_env": "NO_SUCH_VAR_42"}, "'NO_SUCH_VAR_42' is not set"),
        ({"host": "b", "pasword": SECRET}, "unknown field 'pasword'"),
        ({"host": "b", "tls": True}, "field 'monitoring.mqtt.tls' must be a table"),
        ({"host": "b", "tls": {"ca": "x"}}, "[monitoring.mqtt.tls]: unknown field 'ca'"),
        ({"host": "b", "tls": {"ca_file": "/no/such.crt"}}, "field 'monitoring.mqtt.tls.ca_file': no such file '/no/such.crt'"),
        ({"host": "b", "tls": {"insecure": "yes"}}, "field 'monitoring.mqtt.tls.insecure' must be true or false"),
    ],
)
def test_bad_settings_name_the_field(table: dict[str, Any], message: str) -> None:
    with pytest.raises(MonitorError) as error:
        parse_mqtt(table, "room file /x/room.toml")
    assert str(error.value).startswith("room file /x/room.toml: ")
    assert message in str(error.value)
    assert SECRET not in str(error.value)


@needs_broker
def test_a_fall_seen_by_the_monitor_of_a_room_file_reaches_the_broker(broker: Broker, tmp_path: Path) -> None:
    """End to end: the room file's [monitoring.mqtt] table, monitoring.live's sinks, the rules."""
    from monitoring_poses import motion, observe

    from monitoring.live import monitor_config, open_monitor

    room = tmp_path / "room.toml"
    room.write_text(f'[room]\nname = "Room 12"\n[[camera]]\nname = "a"\nsource = "usb:0"\nresolution = [640, 480]\n'
                    f'[monitoring.mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n')  # fmt: skip
    sub = Subscriber(broker.port, ["heatformer/Room 12/events", "heatformer/Room 12/people"])
    monitor = open_monitor(monitor_config(room), tmp_path / "events.jsonl")
    times, frames = motion([(0, "standing", 0, 0), (2.0, "standing", 0, 0), (2.5, "on_floor", 0.3, 0), (5, "on_floor", 0.3, 0)])
    raised_at = None
    for t, points in zip(times, frames, strict=True):
        for event in monitor.update(float(t), [observe(3, points)]):
            if event.type == "fall":
                raised_at = time.monotonic()
        time.sleep(0.01)
    assert raised_at is not None
    got = {}
    while "fall" not in got:
        arrived, topic, payload, _ = sub.get(2.0)
        if topic.endswith("/events"):
            got[payload["type"]] = (arrived, payload)
        else:
            assert payload["people"][0]["person"] == 3  # the people topic carries the state
    arrived, payload = got["fall"]
    assert payload["person"] == 3 and payload["phase"] == "raised" and payload["state"]["posture"] == "on_floor"
    assert arrived - raised_at < 0.2
    monitor.close()
    sub.close()
