"""The life of an alert: raised -> (escalated) -> acknowledged (by whom, when) -> resolved.

The rules say which conditions hold (a key such as ``("on_floor", 2, None)`` with its severity);
the book turns their changes into events. A condition raised again while its alert is still open
is folded into it (``count`` grows, no new event). An alert that nobody acknowledges within
``escalate_s`` is escalated one severity up. An alert is resolved when its condition has been
clear for a while (the rules decide when); it stays listed (``pending``) until someone
acknowledges it, so a banner does not vanish because the person got up. Notices (severity
``info``: the people count, someone leaving the room) are raised and resolved at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from core.types import SEVERITIES, Event

Key = tuple[str, int | None, str | None]  # (type, person, zone)


@dataclass
class Alert:
    id: int
    type: str
    person: int | None
    zone: str | None
    severity: str
    raised_t: float
    state: dict[str, object]
    detail: dict[str, object] = field(default_factory=dict)
    count: int = 1
    escalated: bool = False
    acknowledged_by: str | None = None
    acknowledged_t: float | None = None
    resolved_t: float | None = None

    @property
    def key(self) -> Key:
        return (self.type, self.person, self.zone)

    @property
    def open(self) -> bool:
        return self.resolved_t is None

    @property
    def pending(self) -> bool:
        """Still to be shown: open, or resolved but never acknowledged."""
        return self.open or self.acknowledged_by is None


class AlertBook:
    """Every alert of a run, and the events their changes make."""

    def __init__(self, escalate_s: float, wall: Callable[[float], str], keep: int = 500) -> None:
        self.escalate_s = escalate_s
        self.wall = wall  # session seconds -> ISO wall-clock text
        self.keep = keep
        self.alerts: list[Alert] = []
        self._open: dict[Key, Alert] = {}
        self._next = 1

    def raise_(self, t: float, type_: str, severity: str, person: int | None = None, zone: str | None = None,
               state: Mapping[str, object] | None = None, detail: Mapping[str, object] | None = None) -> list[Event]:  # fmt: skip
        """The condition ``(type_, person, zone)`` holds now: a new alert, or folded into the open one."""
        key = (type_, person, zone)
        alert = self._open.get(key)
        if alert is not None:
            alert.count += 1
            return []
        alert = Alert(self._next, type_, person, zone, severity, t, dict(state or {}), dict(detail or {}))
        self._next += 1
        self.alerts.append(alert)
        if len(self.alerts) > self.keep:  # forget the oldest finished ones; never a pending alert
            extra = len(self.alerts) - self.keep
            drop = {id(a) for a in [a for a in self.alerts if not a.pending][:extra]}
            self.alerts = [a for a in self.alerts if id(a) not in drop]
        events = [self._event(alert, "raised", t)]
        if severity == "info":
            alert.resolved_t, alert.acknowledged_by = t, "auto"
        else:
            self._open[key] = alert
        return events

    def is_open(self, type_: str, person: int | None = None, zone: str | None = None) -> bool:
        return (type_, person, zone) in self._open

    def escalate(self, t: float, type_: str, person: int | None = None, zone: str | None = None,
                 detail: Mapping[str, object] | None = None) -> list[Event]:  # fmt: skip
        """Escalate the open alert of this condition now (a rule's own escalation, e.g. long on the floor)."""
        alert = self._open.get((type_, person, zone))
        if alert is None or alert.escalated:
            return []
        return self._escalate(alert, t, detail)

    def resolve(self, t: float, type_: str, person: int | None = None, zone: str | None = None,
                detail: Mapping[str, object] | None = None) -> list[Event]:  # fmt: skip
        """The condition is over: its open alert is resolved."""
        alert = self._open.pop((type_, person, zone), None)
        if alert is None:
            return []
        alert.resolved_t = t
        alert.detail.update(detail or {})
        return [self._event(alert, "resolved", t)]

    def acknowledge(self, alert_id: int, by: str, t: float) -> list[Event]:
        """Someone has seen the alert (by: a name or a role; kept in the event)."""
        for alert in self.alerts:
            if alert.id == alert_id and alert.acknowledged_by is None:
                alert.acknowledged_by, alert.acknowledged_t = by or "someone", t
                return [self._event(alert, "acknowledged", t, {"by": alert.acknowledged_by})]
        return []

    def tick(self, t: float) -> list[Event]:
        """Escalate what nobody acknowledged in time."""
        events: list[Event] = []
        for alert in list(self._open.values()):
            if not alert.escalated and alert.acknowledged_by is None and t - alert.raised_t >= self.escalate_s:
                events += self._escalate(alert, t, {"reason": "not acknowledged"})
        return events

    @property
    def open(self) -> list[Alert]:
        """The alerts whose condition still holds (what the rules may resolve), oldest first."""
        return list(self._open.values())

    @property
    def pending(self) -> list[Alert]:
        return [a for a in self.alerts if a.pending]

    def _escalate(self, alert: Alert, t: float, detail: Mapping[str, object] | None) -> list[Event]:
        alert.escalated = True
        alert.severity = SEVERITIES[min(len(SEVERITIES) - 1, SEVERITIES.index(alert.severity) + 1)]
        alert.detail.update(detail or {})
        return [self._event(alert, "escalated", t)]

    def _event(self, alert: Alert, phase: str, t: float, detail: dict[str, object] | None = None) -> Event:
        info = {**alert.detail, **(detail or {})}
        if alert.count > 1:
            info["folded"] = alert.count - 1  # raised again this many times while open
        return Event(alert.type, phase, alert.severity, t, self.wall(t), alert.id, alert.person, alert.zone,
                     alert.state, info)  # fmt: skip
