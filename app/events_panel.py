"""The monitor's events in the window: the list of events (newest on top, coloured by severity, the
person in their colour) and the banner across the top of the window while an alert waits for
someone to acknowledge it. Both only show what they are given; the main window polls the
controller and asks who acknowledges."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QBrush, QColor
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.people import person_qcolor
from core.types import Event
from monitoring.alerts import Alert

SEVERITY_COLORS = {  # RGB, increasing severity
    "info": (70, 120, 190),
    "warning": (222, 150, 20),
    "alarm": (210, 50, 40),
    "critical": (150, 0, 70),
}
TYPE_NAMES = {
    "fall": "Fall",
    "on_floor": "On the floor",
    "bed_exit": "Bed exit",
    "no_go": "No-go zone",
    "left_room": "Left the room",
    "no_movement": "No movement",
    "people_count": "People count",
    "blind": "Cannot see",
}
COLUMNS = ("Time", "Event", "Person", "Zone")
MAX_ROWS = 500  # the oldest rows go first
TIME_ROLE = Qt.ItemDataRole.UserRole  # the event's session time, in the first cell
ALERT_ROLE = Qt.ItemDataRole.UserRole + 1  # its alert's number


def severity_qcolor(severity: str) -> QColor:
    return QColor(*SEVERITY_COLORS.get(severity, SEVERITY_COLORS["info"]))


def clock_text(wall: str) -> str:
    """The time of day (HH:MM:SS) of an ISO wall-clock text; the text itself when it is not one."""
    try:
        return dt.datetime.fromisoformat(wall).strftime("%H:%M:%S")
    except ValueError:
        return wall


def type_name(type_: str) -> str:
    return TYPE_NAMES.get(type_, type_.replace("_", " ").capitalize())


def alert_text(type_: str, person: int | None, wall: str) -> str:
    """'Fall - person 2 - 14:03:12' (the room-wide alerts name no person)."""
    parts = [type_name(type_)] + ([f"person {person}"] if person is not None else []) + [clock_text(wall)]
    return " - ".join(parts)


def event_title(event: Event) -> str:
    """What the Event column says: the type, and the phase when it is not the raising."""
    title = type_name(event.type)
    if event.phase != "raised":
        title += f" ({event.phase}" + (f" by {event.detail['by']}" if "by" in event.detail else "") + ")"
    elif event.type == "people_count" and "change" in event.detail:
        title += f": {event.detail['change']}"
    return title


class EventsPanel(QWidget):
    """The events of this run, newest on top. Clicking a row asks to jump there (``jump_requested``,
    the event's session time); "Acknowledge" asks to acknowledge the selected row's alert
    (``acknowledge_requested``, its number)."""

    jump_requested = pyqtSignal(float)
    acknowledge_requested = pyqtSignal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        vertical = self.table.verticalHeader()
        assert vertical is not None
        vertical.setVisible(False)
        header = self.table.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.cellClicked.connect(self._clicked)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.acknowledge_button = QPushButton("Acknowledge")
        self.acknowledge_button.setToolTip("Acknowledge the selected event's alert (your name or role is asked once)")
        self.acknowledge_button.setEnabled(False)
        self.acknowledge_button.clicked.connect(self._acknowledge_selected)
        self.hint = QLabel("")
        self.hint.setStyleSheet("color: gray")
        buttons = QHBoxLayout()
        buttons.addWidget(self.hint, 1)
        buttons.addWidget(self.acknowledge_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(2, 2, 2, 2)
        column.addWidget(self.table, 1)
        column.addLayout(buttons)
        self.walls: dict[int, str] = {}  # alert number -> wall-clock time it was raised
        self.acknowledged: set[int] = set()  # alerts acknowledged (from their events) and notices
        self.can_jump = False

    def set_can_jump(self, can_jump: bool) -> None:
        """A replay: clicking an event jumps to its time."""
        self.can_jump = can_jump
        self.hint.setText("click an event to replay it" if can_jump else "")

    def add_events(self, events: Sequence[Event]) -> None:
        """Put ``events`` (oldest first) on top of the list."""
        for event in events:
            if event.phase == "raised":
                self.walls.setdefault(event.alert, event.wall)
            if event.phase == "acknowledged" or event.severity == "info":  # notices need nobody
                self.acknowledged.add(event.alert)
            self._insert(event)
        while self.table.rowCount() > MAX_ROWS:
            self.table.removeRow(self.table.rowCount() - 1)
        self._selection_changed()

    def _insert(self, event: Event) -> None:
        self.table.insertRow(0)
        color = severity_qcolor(event.severity)
        tint = QBrush(QColor(color.red(), color.green(), color.blue(), 60))
        time_item = QTableWidgetItem(clock_text(event.wall))
        time_item.setData(TIME_ROLE, event.t)
        time_item.setData(ALERT_ROLE, event.alert)
        title = QTableWidgetItem(event_title(event))
        title.setForeground(QBrush(color.darker(130) if event.severity != "info" else color))
        title.setToolTip(f"{event.severity}; alert {event.alert}; t = {event.t:.2f} s")
        person = QTableWidgetItem("" if event.person is None else f"#{event.person}")
        if event.person is not None:
            person.setBackground(QBrush(person_qcolor(event.person)))
            person.setForeground(QBrush(QColor(20, 20, 24)))
        zone = QTableWidgetItem(event.zone or "")
        for column, item in enumerate((time_item, title, person, zone)):
            if column != 2 or event.person is None:
                item.setBackground(tint)
            self.table.setItem(0, column, item)

    def row_texts(self) -> list[tuple[str, ...]]:
        """What the list shows, top row first (for tests)."""
        return [tuple(self._text(r, c) for c in range(self.table.columnCount())) for r in range(self.table.rowCount())]

    def _text(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return "" if item is None else item.text()

    def _row_data(self, row: int) -> tuple[float, int] | None:
        item = self.table.item(row, 0)
        if item is None:
            return None
        return float(item.data(TIME_ROLE)), int(item.data(ALERT_ROLE))

    def selected_alert(self) -> int | None:
        rows = {index.row() for index in self.table.selectedIndexes()}
        data = self._row_data(min(rows)) if rows else None
        return None if data is None else data[1]

    def _selection_changed(self) -> None:
        alert = self.selected_alert()
        self.acknowledge_button.setEnabled(alert is not None and alert not in self.acknowledged and alert in self.walls)

    def _clicked(self, row: int, _column: int) -> None:
        data = self._row_data(row)
        if data is not None and self.can_jump:
            self.jump_requested.emit(data[0])

    def _acknowledge_selected(self) -> None:
        alert = self.selected_alert()
        if alert is not None:
            self.acknowledge_requested.emit(alert)


class AlertBanner(QFrame):
    """A strip across the window while any alert waits to be acknowledged: the most severe (then
    the newest) one's text on its severity colour, how many more wait, and an Acknowledge button."""

    acknowledge_requested = pyqtSignal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel("")
        font = self.label.font()
        font.setPointSize(font.pointSize() + 3)
        font.setBold(True)
        self.label.setFont(font)
        self.button = QPushButton("Acknowledge")
        self.button.clicked.connect(self._acknowledge)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 4, 10, 4)
        row.addWidget(self.label, 1)
        row.addWidget(self.button)
        self.alert: Alert | None = None
        self._shown = ("", "")  # the text and severity shown
        self.setVisible(False)

    def show_alerts(self, alerts: Sequence[Alert], walls: dict[int, str]) -> None:
        """Show the first of ``alerts`` still waiting for someone (``walls``: alert number -> wall
        time it was raised); hide when none waits."""
        waiting = [a for a in alerts if a.acknowledged_by is None]
        if not waiting:
            self.alert, self._shown = None, ("", "")
            self.setVisible(False)
            return
        severities = list(SEVERITY_COLORS)
        top = max(waiting, key=lambda a: (severities.index(a.severity) if a.severity in severities else 0, a.raised_t))
        text = alert_text(top.type, top.person, walls.get(top.id, ""))
        if top.zone:
            text += f" - {top.zone}"
        if top.resolved_t is not None:
            text += " (over)"
        if len(waiting) > 1:
            text += f"   (+{len(waiting) - 1} more)"
        if self._shown != (text, top.severity):  # escalated: same text, another colour
            color = severity_qcolor(top.severity)
            self.setStyleSheet(f"AlertBanner {{ background: {color.name()}; }} QLabel {{ color: white; }}")
            self.label.setText(text)
            self._shown = (text, top.severity)
        self.alert = top
        self.setVisible(True)

    def _acknowledge(self) -> None:
        if self.alert is not None:
            self.acknowledge_requested.emit(self.alert.id)
