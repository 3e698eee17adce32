"""Alerts POSTed as JSON to an HTTP(S) endpoint, read from ``[monitoring.webhook]``.

    [monitoring.webhook]
    url = "https://hooks.example.com/ward3?token=..."   # user:password@ in it becomes Basic auth
    headers = { Authorization = "Bearer ..." }          # sent with every request, never logged
    timeout_s = 5
    min_severity = "alarm"                              # info < warning < alarm < critical
    retries = 3                                         # further tries after a failure (backoff)

The body of each request is one event record (``Event.to_record()``). Events below
``min_severity`` are not sent. :class:`WebhookPublisher` never blocks the caller: a background
thread sends from a bounded queue (the oldest dropped and counted when full), tries again with
doubling delays after a network error, a time-out, 408, 429 or a 5xx answer, and gives up on any
other 4xx. Secrets of the URL (its password, ``token=``-like parameters) and header values never
appear in messages or logs.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from core.types import SEVERITIES
from core.urls import MASK, redact, scrub, split_url, url_problem
from monitoring.config import MonitorError

log = logging.getLogger(__name__)

FIELDS = ("url", "headers", "timeout_s", "min_severity", "retries")
RETRY_STATUS = (408, 429)  # and every 5xx


@dataclass(frozen=True)
class WebhookSettings:
    """Where to POST events. ``repr`` shows the URL redacted and the header names only."""

    url: str = field(repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    timeout_s: float = 5.0
    min_severity: str = "alarm"
    retries: int = 3

    def __repr__(self) -> str:
        return (f"WebhookSettings(url={redact(self.url)!r}, headers={sorted(self.headers)!r}, timeout_s={self.timeout_s}, "
                f"min_severity={self.min_severity!r}, retries={self.retries})")  # fmt: skip

    __str__ = __repr__

    def wants(self, severity: str) -> bool:
        """Whether an event of this severity is sent (ValueError for an unknown severity)."""
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r} (known: {', '.join(SEVERITIES)})")
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)

    def hide(self, text: str) -> str:
        """``text`` with the URL's secrets and every header value replaced by ``***``."""
        text = scrub(text, self.url)
        for value in sorted(self.headers.values(), key=len, reverse=True):
            if len(value) >= 3:
                text = text.replace(value, MASK)
        return text


def parse_webhook(table: dict[str, Any], where: str) -> WebhookSettings:
    """The settings of a ``[monitoring.webhook]`` table; ``where`` names the room file for messages."""
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise MonitorError(f"{where}: [monitoring.webhook]: unknown field {unknown[0]!r} (known: {', '.join(FIELDS)})")
    name = f"{where}: field 'monitoring.webhook."
    url = table.get("url")
    if not isinstance(url, str):
        raise MonitorError(f"{name}url' must be an http:// or https:// URL")
    problem = url_problem(url, ("http", "https"))
    if problem:
        raise MonitorError(f"{name}url' ({redact(url)}) {problem}")
    min_severity = table.get("min_severity", "alarm")
    if min_severity not in SEVERITIES:
        raise MonitorError(f"{name}min_severity' is {min_severity!r}; expected one of {', '.join(SEVERITIES)}")
    timeout = table.get("timeout_s", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0:
        raise MonitorError(f"{name}timeout_s' is {timeout!r}; expected a number of seconds more than 0")
    retries = table.get("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 20:
        raise MonitorError(f"{name}retries' is {retries!r}; expected a whole number from 0 to 20")
    return WebhookSettings(url, _headers(table.get("headers", {}), name), float(timeout), min_severity, retries)


class WebhookPublisher:
    """POSTs events at or above the minimum severity from a background thread.

    queue_size: events waiting at most; backoff_s: the first delay before trying again (doubled
    each time).
    """

    def __init__(self, settings: WebhookSettings, *, queue_size: int = 1000, backoff_s: float = 1.0) -> None:
        self.settings = settings
        self._url, self._headers = _request_target(settings)
        self._secrets = [v for k, v in self._headers.items() if k not in ("Content-Type", "User-Agent") and len(v) >= 3]
        self._queue_size, self._backoff = queue_size, backoff_s
        self._opener = urllib.request.build_opener()
        self._cond = threading.Condition()
        self._queue: deque[bytes] = deque()
        self._stop_at: float | None = None  # set by close: the time to give up
        self._closed = threading.Event()
        self._last_error: str | None = None
        self._counts = dict.fromkeys(("queued", "sent", "failed", "dropped", "filtered", "retries"), 0)
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)
        self._thread.start()

    def event(self, record: dict[str, Any]) -> None:
        """Queue one event record (``Event.to_record()``) when its severity is high enough."""
        if not self.settings.wants(str(record["severity"])):
            with self._cond:
                self._counts["filtered"] += 1
            return
        body = json.dumps(record, separators=(",", ":"), default=_plain).encode()
        with self._cond:
            if self._stop_at is not None:
                raise RuntimeError("the webhook publisher is closed")
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self._counts["dropped"] += 1
                log.warning("webhook queue full (%d events): dropped the oldest event", self._queue_size)
            self._queue.append(body)
            self._counts["queued"] += 1
            self._cond.notify()

    def people(self, t: float, people: list[dict[str, Any]]) -> None:
        """Nothing: the webhook carries events only."""

    def health(self, record: dict[str, Any]) -> None:
        """Nothing: the webhook carries events only."""

    def close(self, timeout: float = 5.0) -> None:
        """Send what can be sent within ``timeout`` s, then stop (what is left is counted as dropped)."""
        with self._cond:
            if self._stop_at is None:
                self._stop_at = time.monotonic() + timeout
            self._cond.notify()
        self._closed.set()
        self._thread.join(timeout + self.settings.timeout_s + 1)

    @property
    def last_error(self) -> str | None:
        """The last failure (one line, secrets hidden), None after a success."""
        return self._last_error

    @property
    def stats(self) -> dict[str, int]:
        """Counters: queued, sent, failed (given up), dropped, filtered (below min_severity), retries,
        and ``waiting`` (in the queue)."""
        with self._cond:
            return {**self._counts, "waiting": len(self._queue)}

    def _run(self) -> None:
        while (body := self._next()) is not None:
            self._deliver(body)

    def _next(self) -> bytes | None:
        with self._cond:
            while not self._queue and self._stop_at is None:
                self._cond.wait()
            if self._queue and (self._stop_at is None or time.monotonic() < self._stop_at):
                return self._queue.popleft()
            self._counts["dropped"] += len(self._queue)
            if self._queue:
                log.warning("webhook: closed with %d events not sent", len(self._queue))
            self._queue.clear()
            return None

    def _deliver(self, body: bytes) -> None:
        for attempt in range(self.settings.retries + 1):
            if attempt:
                self._counts["retries"] += 1
                if self._closed.wait(self._backoff * 2 ** (attempt - 1)) and self._past_stop():
                    break
            error, retry = self._post(body)
            if error is None:
                self._counts["sent"] += 1
                self._last_error = None
                return
            self._last_error = self._hide(f"webhook {redact(self.settings.url)}: {error}")
            log.warning("%s%s", self._last_error, " (will try again)" if retry and attempt < self.settings.retries else "")
            if not retry:
                break
        self._counts["failed"] += 1
        log.error("webhook: gave up on an event after %d tries: %s", attempt + 1, self._last_error)

    def _post(self, body: bytes) -> tuple[str | None, bool]:
        """(None, _) when the endpoint took the event, else (what went wrong, whether to try again)."""
        request = urllib.request.Request(self._url, body, self._headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.settings.timeout_s) as answer:
                answer.read(65536)
            return None, False
        except urllib.error.HTTPError as error:
            error.close()
            return f"HTTP {error.code} {error.reason}", error.code in RETRY_STATUS or error.code >= 500
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            return f"{type(reason).__name__}: {reason}", True

    def _hide(self, text: str) -> str:
        text = self.settings.hide(text)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def _past_stop(self) -> bool:
        return self._stop_at is not None and time.monotonic() >= self._stop_at


def _request_target(settings: WebhookSettings) -> tuple[str, dict[str, str]]:
    """The URL without its user info, and the headers (Basic auth from the user info when given)."""
    parts = split_url(settings.url)
    assert parts is not None  # checked by parse_webhook
    headers = {"Content-Type": "application/json", "User-Agent": "heatformer-monitor"}
    if parts.user is not None:
        pair = f"{unquote(parts.user)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}:{parts.slashes}{parts.host}{port}{parts.rest}", {**headers, **settings.headers}


def _headers(value: object, name: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise MonitorError(f"{name}headers' must be a table of header names and text values")
    for key, text in value.items():
        if not isinstance(text, str) or not key.strip() or any(c in key for c in ":\r\n ") or set(text) & set("\r\n"):
            raise MonitorError(f"{name}headers': header {key!r} needs a name without ':' or spaces and a one-line text value")
    return dict(value)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")
