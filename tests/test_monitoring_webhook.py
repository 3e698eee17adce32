"""monitoring.webhook against a local ThreadingHTTPServer on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import queue
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from core.types import Event
from monitoring.config import MonitorError
from monitoring.webhook import WebhookPublisher, WebhookSettings, parse_webhook

WHERE = "room file /x/room.toml"
URL_SECRET, QUERY_SECRET, HEADER_SECRET = "pw-url-s3cret", "tok-query-s3cret", "hdr-bearer-s3cret"


class Endpoint:
    """A local HTTP server that records every POST and answers with the next scripted status (then 200)."""

    def __init__(self) -> None:
        self.requests: queue.Queue[tuple[str, dict[str, str], Any]] = queue.Queue()
        self.statuses: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.requests.put((self.path, dict(self.headers), json.loads(body)))
                endpoint.gate.wait(10)
                status = endpoint.statuses.pop(0) if endpoint.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, timeout: float = 3.0) -> tuple[str, dict[str, str], Any]:
        return self.requests.get(timeout=timeout)


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoint]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    e = Endpoint()
    yield e
    e.gate.set()
    e.server.shutdown()
    e.server.server_close()


def record(alert: int, severity: str = "alarm") -> dict[str, object]:
    state = {"posture": "lying", "pelvis_z": 0.18}
    return Event("fall", "raised", severity, 10.0 + alert, "2026-11-28T14:00:00+01:00", alert, 2, None, state).to_record()


def test_the_endpoint_receives_the_record_as_json_with_the_headers(endpoint: Endpoint) -> None:
    table = {"url": endpoint.url("/hook?room=ward-3"), "headers": {"X-Api-Key": "k-123", "Authorization": "Bearer abc"}}
    pub = WebhookPublisher(parse_webhook(table, WHERE))
    pub.event(record(1))
    path, headers, body = endpoint.get()
    assert body == record(1)
    assert path == "/hook?room=ward-3"
    assert (headers["Content-Type"], headers["X-Api-Key"], headers["Authorization"]) == (
        "application/json",
        "k-123",
        "Bearer abc",
    )
    pub.close()
    assert pub.stats == {"queued": 1, "sent": 1, "failed": 0, "dropped": 0, "filtered": 0, "retries": 0, "waiting": 0}
    assert pub.last_error is None


def test_user_info_in_the_url_becomes_basic_auth(endpoint: Endpoint) -> None:
    pub = WebhookPublisher(parse_webhook({"url": f"http://alarm:{URL_SECRET}@127.0.0.1:{endpoint.port}/h"}, WHERE))
    pub.event(record(1))
    path, headers, _ = endpoint.get()
    assert path == "/h"
    assert base64.b64decode(headers["Authorization"].removeprefix("Basic ")).decode() == f"alarm:{URL_SECRET}"
    pub.close()


def test_only_events_at_or_above_min_severity_are_sent(endpoint: Endpoint) -> None:
    pub = WebhookPublisher(parse_webhook({"url": endpoint.url(), "min_severity": "warning"}, WHERE))
    for alert, severity in enumerate(("info", "warning", "alarm", "critical", "info")):
        pub.event(record(alert, severity))
    pub.close()
    sent = [endpoint.get()[2]["severity"] for _ in range(3)]
    assert sent == ["warning", "alarm", "critical"] and endpoint.requests.empty()
    assert pub.stats["filtered"] == 2 and pub.stats["sent"] == 3
    assert WebhookSettings("http://h/").wants("alarm") and not WebhookSettings("http://h/").wants("warning")
    with pytest.raises(ValueError, match="unknown severity 'panic'"):
        pub.event(record(9, "panic"))


def test_a_500_answer_is_retried_and_secrets_stay_out_of_the_logs(endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    endpoint.statuses = [500, 503]
    url = f"http://alarm:{URL_SECRET}@127.0.0.1:{endpoint.port}/hook?token={QUERY_SECRET}"
    settings = parse_webhook({"url": url, "headers": {"X-Token": HEADER_SECRET}, "retries": 2}, WHERE)
    pub = WebhookPublisher(settings, backoff_s=0.05)
    pub.event(record(4))
    bodies = [endpoint.get()[2] for _ in range(3)]
    assert bodies == [record(4)] * 3
    pub.close()
    assert (pub.stats["sent"], pub.stats["retries"], pub.stats["failed"]) == (1, 2, 0) and pub.last_error is None
    assert "HTTP 500" in caplog.text and "HTTP 503" in caplog.text
    assert f"http://alarm:***@127.0.0.1:{endpoint.port}/hook?token=***" in caplog.text
    hidden = settings.hide(f"urlopen error for {url} with X-Token: {HEADER_SECRET}")
    assert hidden == f"urlopen error for http://alarm:***@127.0.0.1:{endpoint.port}/hook?token=*** with X-Token: ***"
    for text in (caplog.text, repr(settings), str(settings)):
        assert URL_SECRET not in text and QUERY_SECRET not in text and HEADER_SECRET not in text


def test_giving_up_a_4xx_at_once_and_an_unreachable_endpoint_after_the_retries(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint.statuses = [400]
    pub = WebhookPublisher(parse_webhook({"url": endpoint.url(), "retries": 3}, WHERE), backoff_s=0.05)
    pub.event(record(1))
    pub.close()
    assert endpoint.get()[2] == record(1) and endpoint.requests.empty()  # no retry for a 400
    assert (pub.stats["failed"], pub.stats["retries"]) == (1, 0) and pub.last_error is not None
    assert "HTTP 400" in pub.last_error
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    url = f"http://127.0.0.1:{closed_port}/x?key={QUERY_SECRET}"
    pub = WebhookPublisher(parse_webhook({"url": url, "retries": 2, "headers": {"A": HEADER_SECRET}}, WHERE), backoff_s=0.05)
    pub.event(record(2))
    pub.close()
    assert (pub.stats["failed"], pub.stats["retries"], pub.stats["sent"]) == (1, 2, 0)
    assert pub.last_error is not None and "ConnectionRefusedError" in pub.last_error and "key=***" in pub.last_error
    assert QUERY_SECRET not in caplog.text + pub.last_error and HEADER_SECRET not in caplog.text


def test_the_queue_is_bounded_and_the_caller_never_waits(endpoint: Endpoint) -> None:
    endpoint.gate.clear()  # the endpoint holds the first request
    pub = WebhookPublisher(parse_webhook({"url": endpoint.url()}, WHERE), queue_size=3)
    pub.event(record(1))
    endpoint.get()
    for alert in range(2, 11):
        pub.event(record(alert))
    assert pub.stats["dropped"] == 6 and pub.stats["waiting"] == 3
    endpoint.gate.set()
    assert [endpoint.get()[2]["alert"] for _ in range(3)] == [8, 9, 10]
    pub.close()
    assert pub.stats["sent"] == 4
    with pytest.raises(RuntimeError, match="closed"):
        pub.event(record(11))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "field 'monitoring.webhook.url' must be an http:// or https:// URL"),
        ({"url": "ftp://h/x"}, "field 'monitoring.webhook.url' (ftp://h/x) unknown scheme 'ftp'"),
        ({"url": f"ftp://u:{URL_SECRET}@h/x"}, "(ftp://u:***@h/x) unknown scheme 'ftp'"),
        ({"url": "https:/h/x"}, "needs '//' after 'https:'"),
        ({"url": "http://h", "min_severity": "high"}, "field 'monitoring.webhook.min_severity' is 'high'; expected one of info"),
        ({"url": "http://h", "timeout_s": 0}, "field 'monitoring.webhook.timeout_s' is 0"),
        ({"url": "http://h", "retries": -1}, "field 'monitoring.webhook.retries' is -1"),
        ({"url": "http://h", "headers": ["a"]}, "field 'monitoring.webhook.headers' must be a table"),
        ({"url": "http://h", "headers": {"X-A": f"{HEADER_SECRET}\nX-B: 1"}}, "header 'X-A' needs a name without"),
        ({"url": "http://h", "header": {}}, "[monitoring.webhook]: unknown field 'header'"),
    ],
)
def test_bad_settings_name_the_field(table: dict[str, Any], message: str) -> None:
    with pytest.raises(MonitorError) as error:
        parse_webhook(table, WHERE)
    assert str(error.value).startswith(WHERE + ": ") and message in str(error.value)
    assert URL_SECRET not in str(error.value) and HEADER_SECRET not in str(error.value)


def test_settings_defaults() -> None:
    s = parse_webhook({"url": "https://hooks.example.com/x"}, WHERE)
    assert (s.timeout_s, s.min_severity, s.retries, s.headers) == (5.0, "alarm", 3, {})
