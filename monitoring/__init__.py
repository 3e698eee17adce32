"""Watching the room: per-person state, event rules, alerts, events.jsonl, MQTT and webhook (no Qt)."""
