"""The people in the room: one colour per track id (the same in the camera views, the 3D viewport
and the list) and the side list of the people present."""

from __future__ import annotations

from collections.abc import Sequence

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor, QIcon, QPixmap
from PyQt6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from core.types import Person
from engine.body.render import OVERLAY_COLOR
from engine.people_stage import REWIND_S

# Eight colours that stay apart from each other on camera images and on the dark viewport (RGB).
# The first is the light green one body has always been drawn in: one person looks as before.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (OVERLAY_COLOR[2], OVERLAY_COLOR[1], OVERLAY_COLOR[0]),  # light green
    (66, 135, 245),  # blue
    (245, 130, 48),  # orange
    (230, 25, 75),  # crimson
    (170, 80, 230),  # purple
    (70, 230, 230),  # cyan
    (240, 50, 200),  # magenta
    (255, 225, 25),  # yellow
)
NO_POSTURE = "—"  # until the monitoring fills the posture column
COLUMNS = ("Person", "Posture", "Seen")


def person_color(person_id: int) -> tuple[int, int, int]:
    """The RGB colour of track ``person_id`` (ids 1, 2, ... take the palette in order, then cycle)."""
    return PALETTE[(person_id - 1) % len(PALETTE)]


def person_qcolor(person_id: int) -> QColor:
    return QColor(*person_color(person_id))


def minutes_seconds(seconds: float) -> str:
    """``seconds`` as m:ss (negative times count as 0)."""
    whole = max(0, int(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _swatch(person_id: int, size: int = 12) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(person_qcolor(person_id))
    return QIcon(pixmap)


class PeopleList(QTableWidget):
    """One row per person present, by id: colour swatch and id, posture, time seen (m:ss).
    :meth:`show_people` updates the rows in place: rows come and go with the people, and a
    cell's text is set only when it changes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(list(COLUMNS))
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        vertical = self.verticalHeader()
        assert vertical is not None
        vertical.setVisible(False)
        header = self.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.ids: list[int] = []  # the id shown in each row, in row order
        # "Seen" counts on a clock that keeps going when a replay loops: the tracker starts again
        # with each loop (engine.people_stage), but someone who stays in the list stays seen.
        self._since: dict[int, float] = {}  # on that clock, since when each row's person is seen
        self._offset = 0.0  # the clock minus the frame-sets' time
        self._last_now: float | None = None
        self._step = 0.0  # the last step forward between two sets shown (s)

    def show_people(self, people: Sequence[Person], now: float) -> None:
        """Show ``people`` (by increasing id) as of time ``now`` (s, the frame-set's time, which
        goes back when a replay loops)."""
        if self._last_now is not None and now < self._last_now - REWIND_S:
            self._offset += self._last_now - now + self._step  # the loop took about one step too
        elif self._last_now is not None and now > self._last_now:
            self._step = now - self._last_now
        self._last_now = now
        present = {p.id for p in people}
        for row in reversed(range(len(self.ids))):
            if self.ids[row] not in present:
                self.removeRow(row)
                self._since.pop(self.ids[row], None)
                del self.ids[row]
        for person in sorted(people, key=lambda p: p.id):
            if person.id not in self.ids:
                self._insert(person.id)
            since = person.first_seen + self._offset
            since = self._since[person.id] = min(self._since.get(person.id, since), since)
            row = self.ids.index(person.id)
            self._set_text(row, 2, minutes_seconds(now + self._offset - since))

    def _insert(self, person_id: int) -> None:
        row = sum(1 for i in self.ids if i < person_id)
        self.insertRow(row)
        self.ids.insert(row, person_id)
        name = QTableWidgetItem(_swatch(person_id), f"#{person_id}")
        self.setItem(row, 0, name)
        self.setItem(row, 1, QTableWidgetItem(NO_POSTURE))
        self.setItem(row, 2, QTableWidgetItem(""))

    def _set_text(self, row: int, column: int, text: str) -> None:
        item = self.item(row, column)
        if item is not None and item.text() != text:
            item.setText(text)

    def row_texts(self) -> list[tuple[str, ...]]:
        """What the list shows, row by row (for tests and the screenshot check)."""
        return [tuple(self._text(r, c) for c in range(self.columnCount())) for r in range(self.rowCount())]

    def _text(self, row: int, column: int) -> str:
        item = self.item(row, column)
        return "" if item is None else item.text()
