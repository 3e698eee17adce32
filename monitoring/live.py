"""Setting the monitor up for a run: its configuration from the room file, where the events of a
live run go, and the configured sinks (MQTT, webhook)."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

from core.paths import user_data_dir
from monitoring.config import MonitorConfig, load_config
from monitoring.events import EventLog
from monitoring.monitor import Monitor, Sink

log = logging.getLogger(__name__)


def monitor_config(room_file: Path | None) -> MonitorConfig:
    """The room file's monitoring configuration (MonitorError naming a bad field), defaults without one."""
    return load_config(room_file) if room_file is not None else MonitorConfig()


def default_events_path(room: str, now: dt.datetime | None = None) -> Path:
    """``<user data>/events/<room>-<date>-<time>.jsonl`` for a live run that is not recorded."""
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", room).strip("_") or "room"
    return user_data_dir() / "events" / f"{safe}-{stamp}.jsonl"


def build_sinks(config: MonitorConfig) -> list[Sink]:
    """The MQTT and webhook publishers the room file configures (none by default). Each starts
    connecting in the background: a broker that is down does not stop the app (its events wait)."""
    sinks: list[Sink] = []
    if config.mqtt is not None:
        from monitoring.mqtt import MqttPublisher, parse_mqtt

        settings = parse_mqtt(config.mqtt, config.source, base_dir=config.folder)
        publisher = MqttPublisher(settings, config.room)
        log.info("monitoring: publishing to MQTT %s:%d (topics %s)", settings.host, settings.port, publisher.topics.get("events"))
        sinks.append(publisher)
    if config.webhook is not None:
        from monitoring.webhook import WebhookPublisher, parse_webhook

        sinks.append(WebhookPublisher(parse_webhook(config.webhook, config.source)))
    return sinks


def open_monitor(config: MonitorConfig, events_path: Path | None, with_sinks: bool = True,
                 wall_start: dt.datetime | None = None) -> Monitor:  # fmt: skip
    """A monitor writing to ``events_path`` (None: no file) and to the configured sinks."""
    events = EventLog(events_path) if events_path is not None else None
    sinks = build_sinks(config) if with_sinks else []
    if events_path is not None:
        log.info("events of this run: %s", events_path)
    return Monitor(config, events, sinks, wall_start)
