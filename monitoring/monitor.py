"""The monitor: every frame-set's tracked people in, events out (to the alert book, the events file
and the configured sinks: MQTT, webhook).

The rules (thresholds in monitoring.config.Thresholds, each condition with a minimum duration and
cleared only after ``clear_s`` without it):
- fall: the person reached the floor after their head or pelvis came down at least ``fall_drop_m``
  within ``fall_window_s``, the trunk (midway between head and pelvis) and the head both at a peak
  downward speed of at least ``fall_speed_mps`` in its last ``fall_speed_window_s``, and stayed there
  ``fall_confirm_s``. A controlled sit, kneel or lying down on a bed does not end on the floor or
  comes down slowly; sitting down on the floor from kneeling drops the pelvis fast but not the head.
  Resolved once the person is off the floor.
- on_floor: on the floor longer than ``on_floor_s``; escalated after ``on_floor_escalate_s``.
- bed_exit: during quiet hours, someone who was in a bed zone for ``bed_min_s`` is out of it for
  ``bed_exit_confirm_s``. Resolved when they are back in bed.
- no_go: inside a no-go zone for ``zone_confirm_s``. left_room: a track ended in a door zone.
- no_movement: nothing moved more than ``still_m`` for ``no_movement_s`` (not while lying in a bed
  during quiet hours: that is sleep).
- people_count: the number of people changed and held for ``count_confirm_s`` (visitor arrived,
  alone again, room empty); in a room not calibrated, the most people one view tracks
  (monitoring.state.people_count).
- blind: all cameras down, or nobody trackable for ``blind_s`` while the room is not known to be
  empty (the last person did not leave through a door).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from core.types import BodyEstimate, Event
from monitoring.alerts import Alert, AlertBook
from monitoring.config import MonitorConfig, Thresholds, Zone
from monitoring.events import EventLog
from monitoring.state import EPS, Observation, PersonState, StateTracker, observations, people_count

log = logging.getLogger(__name__)

REWIND_S = 0.5  # time going back by more than this: the source started again (a looping replay)
GONE_S = 1.0  # a person not seen for this long in a door zone has left the room (their track ended) ...
OUT_OF_SIGHT_S = 60.0  # ... elsewhere they are out of sight, kept with their state and open alerts this long
# (the tracker gives the id back to someone who returns within 60 s: a fallen person unseen while a
# camera drops out comes back on the same floor episode, their fall alarm still open)
GAP_SPEED_FACTOR = 0.65  # the fall speed needed when the descent was seen across a gap in tracking
SIGHTING_GAP_S = 0.25  # sightings further apart than this: a gap in tracking (for the fall speed)
SPEED_SPAN_S = 0.25  # downward speeds are measured over at least this long, against detector noise
FREE_FALL_MPS = 6.0  # no trunk comes down faster (from 1.3 m, free fall ends at 5 m/s): a tracking jump
MAX_DROP_ACCEL = 15.0  # m/s^2 (1.5 g): nor does it speed up faster (still a moment ago, 7.5 cm in the next 0.1 s) ...
JUMP_MARGIN_M = 0.3  # ... give or take this (detector noise); a step farther down is a tracking jump


class Sink(Protocol):
    """Where events go besides the events file (monitoring.mqtt, monitoring.webhook)."""

    def event(self, record: dict[str, object]) -> None: ...

    def people(self, t: float, people: list[dict[str, object]]) -> None: ...

    def health(self, record: dict[str, object]) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Person:
    tracker: StateTracker
    last_seen: float
    heights: collections.deque[tuple[float, float, float]] = field(default_factory=collections.deque)  # (t, head, pelvis)
    floor_since: float | None = None  # when the body last reached the floor (the impact)
    fall_checked: bool = False
    bed_since: float | None = None  # in a bed zone since
    bed_zone: str | None = None
    bed_left: float | None = None  # out of the bed zone since
    in_zone: dict[str, float] = field(default_factory=dict)  # no-go zone -> since
    last_zone_kind: str | None = None


@dataclass(frozen=True)
class Descent:
    """How a person came down to the floor (see :func:`descent`)."""

    drop: float  # m, the larger of head and pelvis
    speed: float  # m/s, the peak downward speed of trunk and head (the slower of the two) between sightings without a gap
    gap_speed: float  # m/s, the same across a gap in tracking (0 without one)
    jump: bool  # a trunk step down faster than free fall, or farther than its speed before and 1.5 g allow

    def is_fall(self, limits: Thresholds) -> bool:
        # across a gap (a view dropped out mid-fall) the speed is an average over the gap, below the
        # real peak: a lower bar there, with the full drop still required
        fast = self.speed >= limits.fall_speed_mps or self.gap_speed >= limits.fall_speed_mps * GAP_SPEED_FACTOR
        return self.drop >= limits.fall_drop_m and fast and not self.jump


def descent(heights: np.ndarray, impact: float, limits: Thresholds) -> Descent:
    """How far head or pelvis came down in the ``fall_window_s`` before ``impact`` (m) and the
    peak downward speed of trunk and head in the last ``fall_speed_window_s`` of it (m/s: a quick
    kneel long before a slow lie-down is not a fall), from ``heights`` rows (t, head z, pelvis z, ...).

    A speed is the slower of the trunk's (the midpoint of head and pelvis) and the head's: in a fall
    both come down fast; sitting down on the floor from kneeling drops the pelvis fast enough to
    carry the trunk past the bar, but the head comes down slowly, by a little (on the benchmark's
    falls the head came down at 1.3 m/s or more where the trunk was fastest; sitting down off the
    knees, 0.4-0.6 m/s). Speeds are read on a running median of 3 sightings (one triangulation
    glitch is not a speed). Across a gap in the sightings a speed is an average over the gap
    (``gap_speed``, with a lower bar). A step down faster than free fall, or farther than the speed
    before it and 1.5 g allow (a standing trunk 0.87 m lower 0.2 s later), is a track that jumped to
    someone else (a person standing next to someone on the floor took their skeleton), not a fall."""
    h = heights[(heights[:, 0] >= impact - limits.fall_window_s) & (heights[:, 0] <= impact + limits.fall_confirm_s)]
    if len(h) < 3:
        return Descent(0.0, 0.0, 0.0, False)
    before, after = h[h[:, 0] <= impact], h[h[:, 0] >= impact]
    drop = max(float(before[:, c].max() - np.median(after[:, c])) for c in (1, 2))
    h = h[h[:, 0] >= impact - limits.fall_speed_window_s].copy()  # the fast part must end on the floor
    if len(h) < 3:
        return Descent(drop, 0.0, 0.0, False)
    h[1:-1, 1:] = np.median(np.stack([h[:-2, 1:], h[1:-1, 1:], h[2:, 1:]]), axis=0)
    t, trunk = h[:, 0], (h[:, 1] + h[:, 2]) / 2.0
    steps, drops = np.diff(t), trunk[:-1] - trunk[1:]
    rates = drops / np.maximum(steps, 1e-3)  # m/s down, sighting to sighting
    # each step against the speed before it: a body only speeds up so fast
    reach = np.maximum(rates[:-1], 0.0) * steps[1:] + 0.5 * MAX_DROP_ACCEL * steps[1:] ** 2 + JUMP_MARGIN_M
    jump = bool((rates > FREE_FALL_MPS).any() or (drops[1:] > reach).any())
    speed = gap_speed = 0.0
    for i in range(len(h) - 1):
        j = int(np.searchsorted(t, t[i] + SPEED_SPAN_S - EPS))
        if j >= len(h):
            break
        v = min(float(trunk[i] - trunk[j]), float(h[i, 1] - h[j, 1])) / float(t[j] - t[i])  # the slower of trunk and head
        if steps[i:j].max() > SIGHTING_GAP_S:
            gap_speed = max(gap_speed, v)
        else:
            speed = max(speed, v)
    return Descent(drop, speed, gap_speed, jump)


class Monitor:
    """Rules over tracked people, frame-set after frame-set (``update``), and the alerts they raise."""

    def __init__(self, config: MonitorConfig, events: EventLog | None = None, sinks: Sequence[Sink] = (),
                 wall_start: dt.datetime | None = None) -> None:  # fmt: skip
        self.config = config
        self.limits = config.thresholds
        self.events_log = events
        self.sinks = list(sinks)
        self.wall_start = wall_start
        self._t0: float | None = None
        self.book = AlertBook(config.alert_escalate_s, self.wall_text)
        self.people: dict[int, _Person] = {}
        self.states: dict[int, PersonState] = {}
        self.count = 0  # people count as last reported
        self._count_candidate = (0, 0.0)
        self.known_empty = True
        self._blind_since: float | None = None
        self._clear: dict[tuple[str, int | None, str | None], float] = {}
        self.t = 0.0

    # -- time -------------------------------------------------------------------------------
    def wall(self, t: float) -> dt.datetime:
        """The wall-clock time of session time ``t`` (the first update is ``wall_start``, default now)."""
        if self.wall_start is None:
            self.wall_start = dt.datetime.now().astimezone()
        if self._t0 is None:
            self._t0 = t
        return self.wall_start + dt.timedelta(seconds=t - self._t0)

    def wall_text(self, t: float) -> str:
        return self.wall(t).isoformat(timespec="milliseconds")

    def quiet(self, t: float) -> bool:
        hours = self.config.quiet_hours
        return hours is not None and hours.contains(self.wall(t))

    # -- input ------------------------------------------------------------------------------
    def update_estimate(self, estimate: BodyEstimate, cameras_up: int | None = None) -> list[Event]:
        return self.update(estimate.timestamp, observations(estimate), cameras_up)

    def update(self, t: float, seen: Iterable[Observation], cameras_up: int | None = None) -> list[Event]:
        """The people tracked in the frame-set at time ``t`` (s); the events this makes. Time going
        back (a replay that loops) starts the people afresh; the wall clock keeps going forward."""
        events: list[Event] = []
        if self._t0 is not None and t < self.t - REWIND_S:
            events += self._rewind(t)
        self.wall(t)
        self.t = t
        seen = list(seen)
        for obs in seen:
            person = self.people.get(obs.person)
            if person is None:
                person = self.people[obs.person] = _Person(StateTracker(obs.person, self.config), t)
            person.last_seen = t
            if obs.landmarks is None:
                continue
            state = person.tracker.update(t, obs.landmarks)
            self.states[obs.person] = state
            events += self._person_rules(t, person, state)
        events += self._unseen_bed_exits(t)
        events += self._gone(t)
        count = people_count(seen)
        events += self._count(t, count)
        events += self._blind(t, count, cameras_up)
        events += self.book.tick(t)
        self._emit(events)
        if self.sinks:
            records = [s.to_record() for p, s in self.states.items() if self.people[p].last_seen == t]
            for sink in self.sinks:
                _safely(sink.people, t, records)
        return events

    def _rewind(self, t: float) -> list[Event]:
        """The source started again at ``t``: everyone's state and open person alerts end here."""
        wall_now = self.wall(self.t)
        events: list[Event] = []
        for alert in self.book.open:
            if alert.person is not None:
                self._clear.pop(alert.key, None)
                events += self.book.resolve(self.t, *alert.key, detail={"reason": "the replay started again"})
        self.people.clear()
        self.states.clear()
        self._blind_since = None
        self._count_candidate = (self.count, t)
        self.wall_start, self._t0 = wall_now, t
        return events

    def acknowledge(self, alert_id: int, by: str) -> list[Event]:
        """Staff acknowledged an alert (``by`` is kept in the event)."""
        events = self.book.acknowledge(alert_id, by, self.t)
        self._emit(events)
        return events

    @property
    def pending(self) -> list[Alert]:
        """Alerts still to show: open, or resolved but not acknowledged."""
        return self.book.pending

    def set_zones(self, zones: Sequence[Zone]) -> None:
        """Use ``zones`` from the next update on (the zone editor saved them): the rules and every
        person's state read the new configuration."""
        self.config = dataclasses.replace(self.config, zones=tuple(zones))
        for person in list(self.people.values()):
            person.tracker.config = self.config

    def close(self) -> None:
        for sink in self.sinks:
            _safely(sink.close)
        if self.events_log is not None:
            self.events_log.close()

    # -- rules ------------------------------------------------------------------------------
    def _person_rules(self, t: float, p: _Person, s: PersonState) -> list[Event]:
        lim, who, state = self.limits, s.person, s.to_record()
        events: list[Event] = []
        p.heights.append((t, s.head_z, s.pelvis_z))
        while p.heights and p.heights[0][0] < t - lim.fall_window_s - lim.fall_confirm_s - 1.0:
            p.heights.popleft()
        p.last_zone_kind = s.zone_kind
        # fall: a fast descent that ends on the floor
        low = p.tracker.candidate == "on_floor"
        if low and p.floor_since is None:
            p.floor_since, p.fall_checked = t, False
        elif not low and s.posture != "on_floor":
            p.floor_since = None
        if p.floor_since is not None and not p.fall_checked and t - p.floor_since >= lim.fall_confirm_s - EPS:
            p.fall_checked = True
            d = descent(np.array(p.heights), p.floor_since, lim)
            if d.is_fall(lim):
                detail = {"drop_m": round(d.drop, 2), "speed_mps": round(max(d.speed, d.gap_speed), 2),
                          "impact_t": round(p.floor_since, 3)}  # fmt: skip
                events += self.book.raise_(t, "fall", "alarm", who, s.zone, state, detail)
        events += self._hold(t, "fall", who, None, s.posture == "on_floor")
        # on the floor for too long
        on_floor = s.floor_since is not None  # the floor episode: until they stand up again
        floor_s = t - s.floor_since if s.floor_since is not None else 0.0
        if on_floor and floor_s >= lim.on_floor_s - EPS:
            assert s.floor_since is not None
            events += self.book.raise_(t, "on_floor", "alarm", who, None, state, {"since_t": round(s.floor_since, 3)})
            if floor_s >= lim.on_floor_escalate_s - EPS:
                events += self.book.escalate(t, "on_floor", who, None, {"duration_s": round(floor_s, 1)})
        events += self._hold(t, "on_floor", who, None, on_floor)
        # no movement (not sleep)
        asleep = s.zone_kind == "bed" and s.posture == "lying" and self.quiet(t)
        still = s.still_known and t - s.still_since >= lim.no_movement_s - EPS and not asleep
        if still:
            events += self.book.raise_(t, "no_movement", "alarm", who, s.zone, state, {"still_since_t": round(s.still_since, 3)})
        events += self._hold(t, "no_movement", who, None, still, any_zone=True)
        events += self._bed(t, p, s, state)
        # no-go zones
        for zone in self.config.zones:
            if zone.kind != "no-go":
                continue
            inside = s.zone == zone.name
            if inside:
                since = p.in_zone.setdefault(zone.name, t)
                if t - since >= lim.zone_confirm_s - EPS:
                    events += self.book.raise_(t, "no_go", "alarm", who, zone.name, state)
            else:
                p.in_zone.pop(zone.name, None)
            events += self._hold(t, "no_go", who, zone.name, inside)
        return events

    def _bed(self, t: float, p: _Person, s: PersonState, state: dict[str, object]) -> list[Event]:
        lim = self.limits
        events: list[Event] = []
        in_bed = s.zone_kind == "bed"
        if in_bed:
            if p.bed_since is None:
                p.bed_since, p.bed_zone = t, s.zone
            p.bed_left = None
        elif p.bed_since is not None:
            p.bed_left = t if p.bed_left is None else p.bed_left
            stayed = p.bed_left - p.bed_since >= lim.bed_min_s - EPS
            if stayed and t - p.bed_left >= lim.bed_exit_confirm_s - EPS:
                if self.quiet(t):
                    detail = {"left_t": round(p.bed_left, 3), "in_bed_s": round(p.bed_left - p.bed_since, 1)}
                    events += self.book.raise_(t, "bed_exit", "warning", s.person, p.bed_zone, state, detail)
                p.bed_since = None
            elif not stayed:
                p.bed_since = None
        for alert in self.book.open:
            if alert.type == "bed_exit" and alert.person == s.person:
                events += self._hold(t, "bed_exit", s.person, alert.zone, not in_bed)
        return events

    def _unseen_bed_exits(self, t: float) -> list[Event]:
        """A bed exit goes on being confirmed while the person is out of sight: last seen out of the
        bed, they are still out of it (in a room with two views, one dropping out while someone
        climbs out of bed leaves them unseen for seconds, and the warning would wait for them)."""
        events: list[Event] = []
        for pid, p in self.people.items():
            s = self.states.get(pid)
            if p.last_seen < t and p.bed_left is not None and p.bed_since is not None and s is not None:
                events += self._bed(t, p, s, s.to_record())
        return events

    def _hold(
        self, t: float, type_: str, person: int | None, zone: str | None, active: bool, any_zone: bool = False
    ) -> list[Event]:
        """Resolve the open alert of a condition once it has been clear for ``clear_s``."""
        events: list[Event] = []
        keys = [a.key for a in self.book.open if a.type == type_ and a.person == person]
        keys = [k for k in keys if any_zone or k[2] == zone]
        for key in keys:
            if active:
                self._clear.pop(key, None)
                continue
            since = self._clear.setdefault(key, t)
            if t - since >= self.limits.clear_s - EPS:
                self._clear.pop(key, None)
                events += self.book.resolve(t, *key)
        return events

    def _gone(self, t: float) -> list[Event]:
        """People whose track ended: left the room (last seen in a door zone, after ``GONE_S``), or
        out of sight for ``OUT_OF_SIGHT_S`` (until then their state and alerts stay as they were)."""
        events: list[Event] = []
        for pid, p in list(self.people.items()):
            door = p.last_zone_kind == "door"
            if t - p.last_seen < (GONE_S if door else OUT_OF_SIGHT_S):
                continue
            del self.people[pid]
            state = self.states.pop(pid, None)
            record = state.to_record() if state else {}
            if door:
                zone = state.zone if state else None
                events += self.book.raise_(t, "left_room", "info", pid, zone, record)
                if not self.people:  # (nobody out of sight either)
                    self.known_empty = True
            for alert in self.book.open:
                if alert.person == pid:
                    self._clear.pop(alert.key, None)
                    reason = "left the room" if door else "no longer tracked"
                    events += self.book.resolve(t, *alert.key, detail={"reason": reason})
        return events

    def _count(self, t: float, count: int) -> list[Event]:
        if count > 0:
            self.known_empty = False
        if count == self.count:
            self._count_candidate = (count, t)
            return []
        if self._count_candidate[0] != count:
            self._count_candidate = (count, t)
        if t - self._count_candidate[1] < self.limits.count_confirm_s - EPS:
            return []
        previous, self.count = self.count, count
        change = ("room empty" if count == 0 else "alone again" if count == 1 and previous >= 2
                  else "visitor arrived" if previous == 1 else "someone arrived" if previous == 0
                  else "more people" if count > previous else "fewer people")  # fmt: skip
        return self.book.raise_(
            t, "people_count", "info", None, None, {}, {"count": count, "previous": previous, "change": change}
        )

    def _blind(self, t: float, count: int, cameras_up: int | None) -> list[Event]:
        reason = None
        if cameras_up == 0:
            reason = "all cameras down"
        elif count == 0 and not self.known_empty:
            reason = "nobody trackable"
        if reason is None:
            self._blind_since = None
        elif self._blind_since is None:
            self._blind_since = t
        if reason is not None and self._blind_since is not None and t - self._blind_since >= self.limits.blind_s - EPS:
            events = self.book.raise_(t, "blind", "warning", None, None, {}, {"reason": reason})
        else:
            events = []
        return events + self._hold(t, "blind", None, None, reason is not None)

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            if self.events_log is not None:
                self.events_log.write(event)
            record = event.to_record()
            for sink in self.sinks:
                _safely(sink.event, record)
            log.info("event %s %s person=%s zone=%s t=%.2f", event.type, event.phase, event.person, event.zone, event.t)


def _safely(call: object, *args: object) -> None:
    try:
        call(*args)  # type: ignore[operator]
    except Exception:  # a sink's failure never stops the monitor
        log.exception("monitoring: a sink failed")
