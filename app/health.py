"""The per-camera health row: state (coloured), measured fps, dropped frames, reconnects, and the
group's inter-camera skew. Shown when the source is a live camera group."""

from __future__ import annotations

from PyQt6.QtWidgets import QHBoxLayout, QLabel, QWidget

from capture.live import CameraHealth, CameraState

STATE_COLOURS = {
    CameraState.LIVE: "#2a2",
    CameraState.CONNECTING: "#c90",
    CameraState.RECONNECTING: "#e80",
    CameraState.STALLED: "#e80",
    CameraState.FAILED: "#d22",
    CameraState.STOPPED: "#888",
}


class HealthRow(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(6, 2, 6, 2)
        self.labels: dict[str, QLabel] = {}
        self.skew = QLabel()
        self._layout.addStretch(1)
        self._layout.addWidget(self.skew)

    def update_health(self, health: list[CameraHealth], skew_ms: float | None = None) -> None:
        for h in health:
            label = self.labels.get(h.name)
            if label is None:
                label = self.labels[h.name] = QLabel()
                self._layout.insertWidget(len(self.labels) - 1, label)
            colour = STATE_COLOURS[h.state]
            extra = f", {h.reconnects}x reconnected" if h.reconnects else ""
            label.setText(
                f"<span style='color:{colour}'>●</span> <b>{h.name}</b> {h.state.value}, {h.fps:.0f} fps, "
                f"{h.dropped} dropped{extra}&nbsp;&nbsp;"
            )
            label.setToolTip(f"{h.source}: {h.error or h.state.value}")
        if skew_ms is not None:
            self.skew.setText(f"skew {skew_ms:.0f} ms")

    def text(self) -> str:
        return " | ".join(label.text() for label in self.labels.values())
