"""Bad calibration input (calibration files, board files, ``python -m calibration`` numbers and
output paths): each case exits 2 with one ``error:`` line naming the file, camera and field,
before any work starts. Calibration files go through ``main`` on the demo (fake detector, no
body) and through ``python -m calibration report``; board files through ``calibration board``."""

from __future__ import annotations

import re
from pathlib import Path

from tests.badinput import DEMO, ROOT, Case, check_case, parametrize

DEMO_CALIBRATION = (DEMO / "calibration.toml").read_text()
QUALISYS = (ROOT / "tests" / "data" / "calibration" / "pose2sim_Calib.qca.txt").read_text()
CALISCOPE = (ROOT / "tests" / "data" / "calibration" / "caliscope" / "camera_array.toml").read_text()
# fmt: off
MAIN = ["--headless", "--frames", "1", "--detector", "fake", "--no-body", "--out", "{tmp}/o.npz",
        "--calibration", "{tmp}/bad.toml"]  # fmt: skip
VIDEOS = [str(DEMO / "videos" / f"cam0{i}.mp4") for i in (1, 2)]
BOARD = "[board]\nkind = \"chessboard\"\ncolumns = 9\nrows = 6\nsquare = 0.025\n"
CHARUCO = '[board]\nkind = "charuco"\ncolumns = 5\nrows = 7\nsquare = 0.03\nmarker = 0.022\ndictionary = "DICT_4X4_50"\n'


def camera_field(camera: int, field: str, value: str | None) -> str:
    """The demo calibration with one camera's field replaced (``value`` None: the line removed)."""
    head, _, rest = DEMO_CALIBRATION.partition(f"[cam_{camera}]\n")
    table, sep, tail = rest.partition("\n\n")
    lines = [line for line in table.splitlines() if not line.startswith(f"{field} =")]
    if value is not None:
        lines.append(f"{field} = {value}")
    return f"{head}[cam_{camera}]\n" + "\n".join(lines) + sep + tail


def every_camera(field: str, value: str) -> str:
    return re.sub(rf"^{field} = .*$", f"{field} = {value}", DEMO_CALIBRATION, flags=re.M)


def calib(id: str, text: str, expect: list[str], name: str = "bad.toml") -> list[Case]:
    """The same bad file through main (on the demo) and through ``calibration report``."""
    args = [a.replace("bad.toml", name) for a in MAIN]
    report = ["report", f"{{tmp}}/{name}"]
    return [Case(f"main-{id}", "main", args, expect=[name, *expect], files={name: text}),
            Case(f"report-{id}", "calibration", report, expect=[name, *expect], files={name: text})]  # fmt: skip


def board(id: str, text: str, expect: list[str]) -> Case:
    return Case(f"board-{id}", "calibration", ["board", "--config", "{tmp}/board.toml", "--out", "{tmp}/b.pdf"],
                expect=["board.toml", *expect], files={"board.toml": text})  # fmt: skip


CAM0 = ["'cam01'"]
CALIBRATION_CASES = [
    *calib("missing-matrix", camera_field(0, "matrix", None), ["cam_0", "matrix", "missing"]),
    *calib("missing-translation", camera_field(1, "translation", None), ["cam_1", "translation"]),
    *calib("matrix-text", camera_field(0, "matrix", '"identity"'), [*CAM0, "matrix", "not numeric"]),
    *calib("size-text", camera_field(0, "size", '["1080", "1920"]'), [*CAM0, "size", "not numeric"]),
    *calib("size-fraction", camera_field(0, "size", "[1080.5, 1920]"), [*CAM0, "size", "whole"]),
    *calib("size-zero", camera_field(0, "size", "[0, 1920]"), [*CAM0, "size"]),
    *calib("rotation-shape", camera_field(0, "rotation", "[1.0, 2.0]"), [*CAM0, "rotation", "shape"]),
    *calib("matrix-nan", camera_field(0, "matrix", "[[nan, 0.0, 540.0], [0.0, 1681.0, 960.0], [0.0, 0.0, 1.0]]"),
           [*CAM0, "matrix", "non-finite"]),  # fmt: skip
    *calib("translation-inf", camera_field(2, "translation", "[inf, 0.0, 3.0]"), ["'cam03'", "translation", "non-finite"]),
    *calib("distortion-nan", camera_field(0, "distortions", "[nan, 0.0, 0.0, 0.0, 0.0]"), [*CAM0, "distortions"]),
    *calib("singular-matrix", camera_field(0, "matrix", "[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]"),
           [*CAM0, "matrix", "singular"]),  # fmt: skip
    *calib("matrix-last-row", camera_field(0, "matrix", "[[1681.0, 0.0, 540.0], [0.0, 1681.0, 960.0], [0.0, 0.0, 0.0]]"),
           [*CAM0, "matrix", "[0, 0, 1]"]),  # fmt: skip
    *calib("tiny-focal", camera_field(0, "matrix", "[[1e-30, 0.0, 540.0], [0.0, 1e-30, 960.0], [0.0, 0.0, 1.0]]"),
           [*CAM0, "matrix", "focal", "1e-30"]),  # fmt: skip
    *calib("huge-focal", camera_field(1, "matrix", "[[1e12, 0.0, 540.0], [0.0, 1e12, 960.0], [0.0, 0.0, 1.0]]"),
           ["'cam02'", "matrix", "focal"]),  # fmt: skip
    *calib("negative-focal", camera_field(0, "matrix", "[[-1681.0, 0.0, 540.0], [0.0, 1681.0, 960.0], [0.0, 0.0, 1.0]]"),
           [*CAM0, "matrix", "focal"]),  # fmt: skip
    *calib("principal-point-outside", camera_field(0, "matrix", "[[1681.0, 0.0, 5400.0], [0.0, 1681.0, 960.0], [0.0, 0.0, 1.0]]"),
           [*CAM0, "matrix", "principal point"]),  # fmt: skip
    *calib("huge-distortion", camera_field(0, "distortions", "[1e9, 0.0, 0.0, 0.0, 0.0]"), [*CAM0, "distortions"]),
    *calib("huge-tangential", camera_field(3, "distortions", "[0.0, 0.0, 5.0, 0.0, 0.0]"), ["'cam04'", "distortions"]),
    *calib("distortion-count", camera_field(0, "distortions", "[0.1, 0.01, 0.0]"), [*CAM0, "distortions", "4, 5 or 8"]),
    *calib("huge-rotation", camera_field(0, "rotation", "[1e308, 0.0, 0.0]"), [*CAM0, "rotation", "1e+308"]),
    *calib("translation-mm", camera_field(1, "translation", "[-111.5, 776.6, 3067.5]"), ["'cam02'", "translation", "metres"]),
    *calib("all-at-one-point", every_camera("translation", "[0.0, 0.0, 0.0]"), ["all 4 cameras", "same point", "translation"]),
    *calib("two-at-one-point", camera_field(1, "rotation", "[1.688275479999999, 1.0483220499999995, -0.41955852]").replace(
        "translation = [-0.11152829000000014, 0.7766184799999998, 3.0675519599999994]",
        "translation = [0.3211048899999996, 0.9563320600000006, 2.8907130499999996]"), ["'cam01'", "'cam02'", "same point"]),
    *calib("name-number", camera_field(0, "name", "7"), ["cam_0", "name"]),
    *calib("duplicate-names", camera_field(1, "name", '"cam01"'), ["duplicate", "cam01"]),
    *calib("format-version", DEMO_CALIBRATION.replace("format_version = 1", "format_version = 99"), ["format_version", "99"]),
    *calib("metadata-not-table", DEMO_CALIBRATION.replace("[metadata]\n", "metadata = 3\n[meta]\n"), ["metadata"]),
    *calib("no-cameras", "[metadata]\nformat_version = 1\n", ["no camera tables"]),
    *calib("not-toml", "[cam_0\nname = ", ["not valid TOML"]),
    *calib("qualisys-nan-focal", QUALISYS.replace('focalLengthU="107599.671875"', 'focalLengthU="nan"'),
           ["'cam01'", "matrix", "non-finite"], name="bad.qca.txt"),  # fmt: skip
    *calib("qualisys-huge-distortion", QUALISYS.replace('radialDistortion1="-0.046183"', 'radialDistortion1="1e9"'),
           ["'cam01'", "distortions"], name="bad.qca.txt"),  # fmt: skip
    *calib("caliscope-not-rotation", CALISCOPE.replace("rotation = [[0.5302040555527485", "rotation = [[5.302040555527485"),
           ["caliscope", "'cam_0'", "rotation"], name="camera_array.toml"),  # fmt: skip
    *calib("caliscope-matrix-text", CALISCOPE.replace("matrix = [[903.550124089999", 'matrix = [["903"'),
           ["caliscope", "'cam_0'", "matrix", "not numeric"], name="camera_array.toml"),  # fmt: skip
]

MAIN_ONLY_CASES = [
    Case("main-three-cameras", "main", MAIN, expect=["bad.toml", "has 3 camera(s)", "has 4"],
         files={"bad.toml": DEMO_CALIBRATION.split("[cam_3]")[0]}),  # fmt: skip
    Case("main-intrinsics-only", "main", MAIN, expect=["bad.toml", "intrinsics only"],
         files={"bad.toml": DEMO_CALIBRATION.replace("[metadata]\n", '[metadata]\nkind = "intrinsics"\n')}),  # fmt: skip
    Case("main-size-far-off", "main", MAIN, expect=["bad.toml", "'cam01'", "calibrated for 640x480", "1080x1920"],
         files={"bad.toml": camera_field(0, "size", "[640, 480]").replace("532.97369384375", "320.0").replace(
             "948.137390140625", "240.0")}),  # fmt: skip
]

BOARD_CASES = [
    board("columns-text", BOARD.replace("columns = 9", 'columns = "9"'), ["columns", "whole number"]),
    board("columns-float", BOARD.replace("columns = 9", "columns = 9.5"), ["columns", "whole number"]),
    board("huge-board", BOARD.replace("columns = 9", "columns = 30000").replace("rows = 6", "rows = 30000"),
          ["columns", "30000"]),  # fmt: skip
    board("rows-one", BOARD.replace("rows = 6", "rows = 1"), ["rows", "2 to 50"]),
    board("square-zero", BOARD.replace("square = 0.025", "square = 0"), ["square", "metres"]),
    board("square-negative", BOARD.replace("square = 0.025", "square = -0.025"), ["square"]),
    board("square-millimetres", BOARD.replace("square = 0.025", "square = 60"), ["square", "60 m", "did you mean 0.060"]),
    board("square-text", BOARD.replace("square = 0.025", 'square = "25mm"'), ["square", "25mm"]),
    board("square-nan", BOARD.replace("square = 0.025", "square = nan"), ["square", "nan"]),
    board("unknown-kind", BOARD.replace("chessboard", "checkerboard"), ["kind", "checkerboard"]),
    board("missing-square", BOARD.replace("square = 0.025\n", ""), ["missing", "square"]),
    board("unknown-field", BOARD + "colour = \"red\"\n", ["unknown", "colour"]),
    board("no-table", "kind = \"chessboard\"\n", ["[board]"]),
    board("not-toml", "[board\n", ["not valid TOML"]),
    board("marker-too-big", CHARUCO.replace("marker = 0.022", "marker = 0.03"), ["marker", "smaller than the square"]),
    board("marker-missing", CHARUCO.replace("marker = 0.022\n", ""), ["marker", "missing"]),
    board("unknown-dictionary", CHARUCO.replace("DICT_4X4_50", "DICT_9X9_50"), ["dictionary", "DICT_9X9_50"]),
    board("dictionary-missing", CHARUCO.replace('dictionary = "DICT_4X4_50"\n', ""), ["dictionary", "missing"]),
    board("too-many-markers", CHARUCO.replace("columns = 5", "columns = 20").replace("rows = 7", "rows = 20"),
          ["dictionary", "50 markers", "needs 200"]),  # fmt: skip
    board("inverted-text", CHARUCO + 'inverted = "yes"\n', ["inverted", "true or false"]),
    Case("board-missing-file", "calibration", ["board", "--config", "{tmp}/none.toml", "--out", "{tmp}/b.pdf"],
         expect=["none.toml", "not found"]),  # fmt: skip
]

B = "{tmp}/board.toml"
CLI_CASES = [
    Case("extrinsics-every-zero", "calibration", ["extrinsics", "--board", B, "--videos", *VIDEOS, "--intrinsics",
         str(DEMO / "calibration.toml"), "--every", "0", "--out", "{tmp}/room.toml"], expect=["--every", "0"],
         files={"board.toml": BOARD}),  # fmt: skip
    Case("extrinsics-every-negative", "calibration", ["extrinsics", "--board", B, "--videos", *VIDEOS, "--intrinsics",
         str(DEMO / "calibration.toml"), "--every", "-3", "--out", "{tmp}/room.toml"], expect=["--every", "-3"],
         files={"board.toml": BOARD}),  # fmt: skip
    Case("intrinsics-every-zero", "calibration", ["intrinsics", "--board", B, "--video", VIDEOS[0], "--every", "0",
         "--out", "{tmp}/c.toml"], expect=["--every", "0"], files={"board.toml": BOARD}),  # fmt: skip
    Case("extrinsics-floor-frame-negative", "calibration", ["extrinsics", "--board", B, "--videos", *VIDEOS, "--intrinsics",
         str(DEMO / "calibration.toml"), "--floor-frame", "-1", "--out", "{tmp}/room.toml"], expect=["--floor-frame", "-1"],
         files={"board.toml": BOARD}),  # fmt: skip
    Case("extrinsics-floor-frame-past-the-end", "calibration", ["extrinsics", "--board", B, "--videos", *VIDEOS,
         "--intrinsics", str(DEMO / "calibration.toml"), "--floor-frame", "500", "--out", "{tmp}/room.toml"],
         expect=["--floor-frame 500", "100 frames"], files={"board.toml": BOARD}),  # fmt: skip
    Case("extrinsics-floor-frame-skipped", "calibration", ["extrinsics", "--board", B, "--videos", *VIDEOS,
         "--intrinsics", str(DEMO / "calibration.toml"), "--every", "4", "--floor-frame", "6", "--out", "{tmp}/room.toml"],
         expect=["--floor-frame 6", "--every 4"], files={"board.toml": BOARD}),  # fmt: skip
    Case("extrinsics-floor-frame-not-a-sync-index", "calibration", ["extrinsics", "--board", B, "--videos", *VIDEOS,
         "--intrinsics", str(DEMO / "calibration.toml"), "--timestamps", "{tmp}/sync.csv", "--floor-frame", "7",
         "--out", "{tmp}/room.toml"], expect=["--floor-frame 7", "sync index"],
         files={"board.toml": BOARD, "sync.csv": "sync_index,cam_id,frame_index\n0,0,0\n0,1,0\n1,0,1\n1,1,1\n"}),  # fmt: skip
    Case("extrinsics-timestamps-text", "calibration", ["extrinsics", "--board", B, "--videos", *VIDEOS, "--intrinsics",
         str(DEMO / "calibration.toml"), "--timestamps", "{tmp}/sync.csv", "--out", "{tmp}/room.toml"],
         expect=["sync.csv", "line 3", "whole numbers"],
         files={"board.toml": BOARD, "sync.csv": "sync_index,cam_id,frame_index\n0,0,0\nzero,1,0\n"}),  # fmt: skip
    Case("extrinsics-missing-video", "calibration", ["extrinsics", "--board", B, "--videos", VIDEOS[0], "{tmp}/cam02.mp4",
         "--intrinsics", str(DEMO / "calibration.toml"), "--out", "{tmp}/room.toml"], expect=["cam02.mp4", "not found"],
         files={"board.toml": BOARD}),  # fmt: skip
    Case("extrinsics-intrinsics-nan", "calibration", ["extrinsics", "--board", B, "--videos", *VIDEOS, "--intrinsics",
         "{tmp}/bad.toml", "--out", "{tmp}/room.toml"], expect=["bad.toml", "'cam01'", "matrix"],
         files={"board.toml": BOARD, "bad.toml": camera_field(0, "matrix", "[[nan, 0, 540], [0, 1681, 960], [0, 0, 1]]")}),
    Case("extrinsics-out-folder-missing", "calibration", ["extrinsics", "--board", B, "--videos", *VIDEOS, "--intrinsics",
         str(DEMO / "calibration.toml"), "--out", "{tmp}/no/room.toml"], expect=["--out", "room.toml", "does not exist"],
         files={"board.toml": BOARD}),  # fmt: skip
    Case("extrinsics-json-folder-missing", "calibration", ["extrinsics", "--board", B, "--videos", *VIDEOS, "--intrinsics",
         str(DEMO / "calibration.toml"), "--out", "{tmp}/room.toml", "--json", "{tmp}/no/s.json"],
         expect=["--json", "s.json", "does not exist"], files={"board.toml": BOARD}),  # fmt: skip
    Case("intrinsics-out-folder-missing", "calibration", ["intrinsics", "--board", B, "--video", VIDEOS[0],
         "--out", "{tmp}/no/c.toml"], expect=["--out", "c.toml", "does not exist"], files={"board.toml": BOARD}),  # fmt: skip
    Case("intrinsics-out-is-a-folder", "calibration", ["intrinsics", "--board", B, "--video", VIDEOS[0], "--out", "{tmp}"],
         expect=["--out", "is a folder"], files={"board.toml": BOARD}),  # fmt: skip
    Case("intrinsics-missing-video", "calibration", ["intrinsics", "--board", B, "--video", "{tmp}/none.mp4",
         "--out", "{tmp}/c.toml"], expect=["none.mp4", "not found"], files={"board.toml": BOARD}),  # fmt: skip
    Case("intrinsics-missing-images", "calibration", ["intrinsics", "--board", B, "--images", "{tmp}/none",
         "--out", "{tmp}/c.toml"], expect=["none", "not found"], files={"board.toml": BOARD}),  # fmt: skip
    Case("board-out-folder-missing", "calibration", ["board", "--config", B, "--out", "{tmp}/no/b.pdf"],
         expect=["--out", "b.pdf", "does not exist"], files={"board.toml": BOARD}),  # fmt: skip
    Case("board-out-suffix", "calibration", ["board", "--config", B, "--out", "{tmp}/b.txt"], expect=["--out", "b.txt", ".pdf"],
         files={"board.toml": BOARD}),  # fmt: skip
    Case("report-png-folder-missing", "calibration", ["report", str(DEMO / "calibration.toml"), "--png", "{tmp}/no/top.png"],
         expect=["--png", "top.png", "does not exist"]),  # fmt: skip
    Case("report-png-suffix", "calibration", ["report", str(DEMO / "calibration.toml"), "--png", "{tmp}/top.txt"],
         expect=["--png", "top.txt"]),  # fmt: skip
    Case("report-missing-file", "calibration", ["report", "{tmp}/none.toml"], expect=["none.toml", "not found"]),
]
# fmt: on

CASES = [*CALIBRATION_CASES, *MAIN_ONLY_CASES, *BOARD_CASES, *CLI_CASES]


@parametrize(CASES)
def test_bad_input(case: Case, tmp_path: Path) -> None:
    check_case(case, tmp_path)


def test_the_corpus_covers_every_entry() -> None:
    assert len(CASES) >= 45
    assert {c.entry for c in CASES} == {"main", "calibration"}
    assert {c.args[0] for c in CASES if c.entry == "calibration"} == {"board", "intrinsics", "extrinsics", "report"}
