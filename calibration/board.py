"""Calibration boards (chessboard, ChArUco): definition in a small TOML file, detection with
sub-pixel refinement, and a printable image at true scale.

Board TOML (one ``[board]`` table; lengths in metres)::

    [board]
    kind = "chessboard"        # or "charuco"
    columns = 9                # chessboard: inner corners across; charuco: squares across
    rows = 6                   # chessboard: inner corners down;   charuco: squares down
    square = 0.025             # square side
    # charuco only:
    marker = 0.019             # marker side
    dictionary = "DICT_4X4_50" # any cv2.aruco predefined dictionary
    legacy = false             # OpenCV's pre-4.6 ChArUco layout
    inverted = false           # white markers on black
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.errors import CalibrationError
from core.tomlfile import read_toml

KINDS = ("chessboard", "charuco")
MIN_COUNT, MAX_COUNT = 2, 50  # columns and rows (a printable board; 30000 would not fit in memory)
MIN_LENGTH_M, MAX_LENGTH_M = 0.001, 1.0  # square and marker sides
DETECT_MAX_SIDE = 1280  # chessboards are found on a copy at most this large, then refined at full size


@dataclass(frozen=True)
class Detection:
    """Board corners found in one image: ``corners`` ``[n, 2]`` pixels and their ``ids`` ``[n]``
    (indices into :meth:`Board.object_points`)."""

    corners: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Board:
    kind: str
    columns: int
    rows: int
    square: float
    marker: float | None = None
    dictionary: str | None = None
    legacy: bool = False
    inverted: bool = False

    def __post_init__(self) -> None:
        """Every field checked; ``CalibrationError("board: field <name> ...")`` names the first bad one."""
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise CalibrationError(f"board: field kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        for name in ("columns", "rows"):
            _check_count(name, getattr(self, name))
        _check_length("square", self.square)
        for name in ("legacy", "inverted"):
            if not isinstance(getattr(self, name), bool):
                raise CalibrationError(f"board: field {name} must be true or false, not {getattr(self, name)!r}")
        if self.kind == "charuco":
            self._check_charuco()

    def _check_charuco(self) -> None:
        if self.marker is None:
            raise CalibrationError("board: field marker is missing (a charuco board needs the marker side, in metres)")
        _check_length("marker", self.marker)
        if not self.marker < self.square:
            raise CalibrationError(f"board: field marker ({self.marker} m) must be smaller than the square ({self.square} m)")
        known = isinstance(self.dictionary, str) and self.dictionary.startswith("DICT_")
        if not known or not isinstance(getattr(cv2.aruco, str(self.dictionary), None), int):
            raise CalibrationError(f"board: field dictionary: unknown ArUco dictionary {self.dictionary!r} (e.g. DICT_4X4_50)")
        size = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, str(self.dictionary))).bytesList.shape[0]
        markers = self.columns * self.rows // 2
        if markers > size:
            raise CalibrationError(f"board: field dictionary {self.dictionary} has {size} markers but a {self.columns} x "
                                   f"{self.rows} charuco board needs {markers}")  # fmt: skip

    @property
    def inner_corners(self) -> tuple[int, int]:
        """Inner corners (across, down)."""
        return (self.columns, self.rows) if self.kind == "chessboard" else (self.columns - 1, self.rows - 1)

    def object_points(self) -> np.ndarray:
        """Corner positions ``[n, 3]`` on the board plane (z = 0), metres, row by row."""
        cols, rows = self.inner_corners
        x, y = np.meshgrid(np.arange(cols), np.arange(rows))
        pts = np.stack([x.ravel(), y.ravel(), np.zeros(cols * rows)], axis=1) * self.square
        if self.kind == "charuco":
            pts[:, :2] += self.square  # OpenCV's ChArUco corners start one square in
        return pts

    def detect(self, image: np.ndarray) -> Detection | None:
        """The board's corners in ``image`` (BGR or grey), or None when it is not found."""
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return self._detect_chessboard(grey) if self.kind == "chessboard" else self._detect_charuco(grey)

    def _detect_chessboard(self, grey: np.ndarray) -> Detection | None:
        scale = min(1.0, DETECT_MAX_SIDE / max(grey.shape))
        small = grey if scale == 1.0 else cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
        found, corners = cv2.findChessboardCorners(small, self.inner_corners, flags=flags)
        if not found:
            found, corners = cv2.findChessboardCorners(small, self.inner_corners, flags=flags & ~cv2.CALIB_CB_FAST_CHECK)
        if not found:
            return None
        corners = corners.reshape(-1, 2) / scale
        window = max(3, int(round(0.25 * _spacing(corners, self.inner_corners))))
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 0.001)
        refined = cv2.cornerSubPix(grey, corners.astype(np.float32).reshape(-1, 1, 2), (window, window), (-1, -1), criteria)
        corners = refined.reshape(-1, 2).astype(np.float64)
        # A chessboard looks the same turned 180 degrees when both counts are odd or both even:
        # make the first corner the top-left one so every view numbers the corners alike.
        if corners[0, 1] + corners[0, 0] > corners[-1, 1] + corners[-1, 0]:
            corners = corners[::-1].copy()
        return Detection(corners, np.arange(len(corners)))

    def _charuco(self) -> cv2.aruco.CharucoBoard:
        assert self.dictionary is not None and self.marker is not None
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        board = cv2.aruco.CharucoBoard((self.columns, self.rows), self.square, self.marker, dictionary)
        board.setLegacyPattern(self.legacy)
        return board

    def _detect_charuco(self, grey: np.ndarray) -> Detection | None:
        params = cv2.aruco.DetectorParameters()
        params.detectInvertedMarker = self.inverted
        params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        detector = cv2.aruco.CharucoDetector(self._charuco(), cv2.aruco.CharucoParameters(), params)
        corners, ids, _, _ = detector.detectBoard(grey)
        if ids is None or len(ids) < 4:
            return None
        return Detection(corners.reshape(-1, 2).astype(np.float64), ids.ravel().astype(np.int64))

    def image(self, pixels_per_square: int = 100, margin_squares: float = 0.5) -> np.ndarray:
        """The board as a grey image (white margin) for printing at ``square`` per square."""
        margin = int(round(margin_squares * pixels_per_square))
        if self.kind == "charuco":
            size = (self.columns * pixels_per_square, self.rows * pixels_per_square)
            picture = self._charuco().generateImage(size, marginSize=0, borderBits=1)
            if self.inverted:
                picture = 255 - picture
        else:
            squares_x, squares_y = self.columns + 1, self.rows + 1
            y, x = np.mgrid[0 : squares_y * pixels_per_square, 0 : squares_x * pixels_per_square] // pixels_per_square
            picture = np.where((x + y) % 2 == 0, 0, 255).astype(np.uint8)
        return cv2.copyMakeBorder(picture, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=(255,))


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CalibrationError(f"board: field {name} must be a whole number, not {value!r}")
    if not MIN_COUNT <= value <= MAX_COUNT:
        raise CalibrationError(f"board: field {name} must be {MIN_COUNT} to {MAX_COUNT} (got {value})")


def _check_length(name: str, value: object) -> None:
    """A length in metres: a number from 1 mm to 1 m (a larger one was typed in millimetres)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CalibrationError(f"board: field {name} must be a length in metres, not {value!r}")
    if value > MAX_LENGTH_M:
        raise CalibrationError(f"board: field {name} is in metres; {value:g} m is not a board {name}; "
                               f"did you mean {value / 1000:.3f}?")  # fmt: skip
    if not value >= MIN_LENGTH_M:
        raise CalibrationError(f"board: field {name} must be at least {MIN_LENGTH_M} m (got {value:g}; it is in metres)")


def _spacing(corners: np.ndarray, size: tuple[int, int]) -> float:
    """Median distance in pixels between neighbouring corners along a row."""
    grid = corners.reshape(size[1], size[0], 2)
    return float(np.median(np.linalg.norm(np.diff(grid, axis=1), axis=-1)))


def load_board(path: str | Path) -> Board:
    """Read a board TOML file (see the module docstring)."""
    path = Path(path)
    table = read_toml(path, "board file", CalibrationError).get("board")
    if not isinstance(table, dict):
        raise CalibrationError(f"board file {path}: no [board] table")
    for name in ("kind", "columns", "rows", "square"):
        if name not in table:
            raise CalibrationError(f"board file {path}: [board] is missing field {name!r}")
    if table["kind"] == "charuco" and "dictionary" not in table:
        raise CalibrationError(f"board file {path}: [board] is missing field 'dictionary' (a charuco board needs it)")
    known = {"kind", "columns", "rows", "square", "marker", "dictionary", "legacy", "inverted"}
    unknown = set(table) - known
    if unknown:
        raise CalibrationError(f"board file {path}: unknown field(s) in [board]: {', '.join(sorted(unknown))}")
    try:
        return Board(**table)
    except CalibrationError as exc:
        raise CalibrationError(f"board file {path}: {str(exc).removeprefix('board: ')}") from exc
    except TypeError as exc:  # a field of the wrong type that the checks above let through
        raise CalibrationError(f"board file {path}: {exc}") from exc


def save_board(path: str | Path, board: Board) -> None:
    lines = [
        "[board]",
        f'kind = "{board.kind}"',
        f"columns = {board.columns}",
        f"rows = {board.rows}",
        f"square = {board.square!r}",
    ]
    if board.kind == "charuco":
        lines += [f"marker = {board.marker!r}", f'dictionary = "{board.dictionary}"']
        lines += [f"legacy = {str(board.legacy).lower()}", f"inverted = {str(board.inverted).lower()}"]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


BOARD_SUFFIXES = (".pdf", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def write_board(board: Board, out: Path, pixels_per_square: int = 200) -> dict[str, object]:
    """PDF at true scale (page = board + margin), or PNG/JPG with the resolution in its name."""
    if out.suffix.lower() not in BOARD_SUFFIXES:
        kinds = ", ".join(BOARD_SUFFIXES)
        raise CalibrationError(f"--out {out}: a board is written as {kinds} (not {out.suffix or 'no suffix'!r})")
    picture = board.image(pixels_per_square)
    metres_per_pixel = board.square / pixels_per_square
    width_m, height_m = picture.shape[1] * metres_per_pixel, picture.shape[0] * metres_per_pixel
    if out.suffix.lower() == ".pdf":
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(width_m / 0.0254, height_m / 0.0254))
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.imshow(picture, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_axis_off()
        fig.savefig(out, format="pdf")
        plt.close(fig)
    elif not cv2.imwrite(str(out), picture):
        raise CalibrationError(f"board image {out}: cannot write (use .pdf, .png or .jpg)")
    dpi = 0.0254 / metres_per_pixel
    return {"out": str(out), "width_mm": round(width_m * 1000, 1), "height_mm": round(height_m * 1000, 1),
            "print_dpi": round(dpi, 1), "note": "print at 100% (no fit-to-page); check one square with a ruler"}  # fmt: skip
