"""Several people in the window (issue 28): each in their colour in the camera views and the 3D
viewport, the list of the people present, the count in the status bar, the per-view notice when
uncalibrated; a result without people displays as before. Synthetic people: the fake detector's
standing skeleton moved along x, seen by cameras around the room, with small meshes of known
geometry."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.gui

if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    pytest.skip("GUI tests need a display: run them with `make test` (Xvfb)", allow_module_level=True)

import pyqtgraph.opengl as gl  # noqa: E402

from app.camera_view import COLOR_RIGHT, CameraView  # noqa: E402
from app.main_window import PER_VIEW_PEOPLE, MainWindow  # noqa: E402
from app.people import PALETTE, minutes_seconds, person_color  # noqa: E402
from core.camera import Camera, looking_at, rig_calibrated, uncalibrated  # noqa: E402
from core.types import BodyEstimate, BodyParams, Frame, FrameSet, Keypoints2D, Person, ViewEstimate  # noqa: E402
from engine.body.render import OVERLAY_COLOR  # noqa: E402
from engine.detect.fake import STANDING_SKELETON  # noqa: E402
from engine.runner import RunnerState, RunnerStats  # noqa: E402
from tests.test_gui import image_array  # noqa: E402

SIZE = (640, 480)
BACKGROUND = 40  # the camera images are a flat grey, so what is drawn over them is measurable
QUAD = np.array([[0, 1, 2], [0, 2, 3]])
BOX_FACES = np.array([[0, 2, 3], [0, 3, 1], [4, 5, 7], [4, 7, 6], [0, 1, 5], [0, 5, 4],
                      [2, 6, 7], [2, 7, 3], [0, 4, 6], [0, 6, 2], [1, 3, 7], [1, 7, 5]])  # fmt: skip
SHOT = Path("/tmp/people_window.png")


def room() -> list[Camera]:
    return [looking_at(f"cam{i + 1}", eye, size=SIZE, focal=500.0)
            for i, eye in enumerate([(0.0, -5.0, 1.8), (5.0, 0.0, 1.8), (0.0, 5.0, 1.8), (-5.0, 0.0, 1.8)])]  # fmt: skip


def torso_quad(camera: Camera, centre: np.ndarray) -> ViewEstimate:
    """A 0.3 x 0.4 m quad facing ``camera`` at ``centre`` (world), as a view's display mesh."""
    assert camera.R is not None and camera.t is not None
    c = camera.R @ centre + camera.t
    cam = c + np.array([[-0.15, -0.2, 0], [0.15, -0.2, 0], [0.15, 0.2, 0], [-0.15, 0.2, 0]])
    normal = np.cross(cam[1] - cam[0], cam[2] - cam[0])
    faces = QUAD if normal @ -cam.mean(axis=0) > 0 else QUAD[:, ::-1].copy()  # front side towards the camera
    world = (cam - camera.t) @ camera.R  # camera -> world: R^T (x - t)
    params = BodyParams(np.zeros(3), np.zeros((23, 3)), np.zeros(10), np.zeros(3))
    return ViewEstimate(camera, params, mesh_cam=cam, mesh_px=camera.project(world), mesh_faces=faces)


def box(x: float, y: float) -> np.ndarray:
    """The 8 corners of a 0.4 x 0.3 x 1.7 m box standing at (x, y) (BOX_FACES' vertex order)."""
    return np.array([[x + dx, y + dy, z] for z in (0.0, 1.7) for dy in (-0.15, 0.15) for dx in (-0.2, 0.2)])


def person(pid: int, x: float, cameras: list[Camera], first_seen: float = 0.0) -> Person:
    skeleton = STANDING_SKELETON + np.array([x, 0.0, 0.0])
    kp2d = {c.name: Keypoints2D(c.name, np.hstack([c.project(skeleton), np.ones((17, 1))]).astype(np.float32))
            for c in cameras}  # fmt: skip
    views = {c.name: torso_quad(c, skeleton[[5, 6, 11, 12]].mean(axis=0)) for c in cameras}
    return Person(pid, kp2d, np.hstack([skeleton, np.ones((17, 1))]), views=views, mesh3d=box(x, 0.0), first_seen=first_seen)


def estimate(cameras: list[Camera], people: list[Person], t: float = 75.0, index: int = 0) -> BodyEstimate:
    frames = {c.name: Frame(c.name, np.full((SIZE[1], SIZE[0], 3), BACKGROUND, np.uint8), t, index) for c in cameras}
    first = people[0] if people else None
    return BodyEstimate(
        FrameSet(frames, t, index),
        keypoints2d=dict(first.keypoints2d) if first else {},
        keypoints3d=first.keypoints3d if first else None,
        views=dict(first.views) if first else {},
        mesh3d=first.mesh3d if first else None,
        mesh_faces=BOX_FACES,
        people=people,
    )


class Feed:
    """What the window asks its controller, answered with the estimate a test sets."""

    def __init__(self, cameras: list[Camera]) -> None:
        self.cameras = cameras
        self.estimate: BodyEstimate | None = None
        self.recorder = None
        self.backend_description = ""
        self.has_health = False
        self.skew_ms = None

    @property
    def calibrated(self) -> bool:
        return rig_calibrated(self.cameras)

    def latest(self) -> BodyEstimate | None:
        return self.estimate

    def stats(self) -> RunnerStats:
        return RunnerStats(RunnerState.RUNNING, processed=1, fps=10.0, skipped=0, error=None)

    def health(self) -> None:
        return None

    def load_calibration(self, path: Path) -> list[Camera]:
        self.cameras = room()[: len(self.cameras)]
        return self.cameras

    def stop_recording(self) -> None:
        return None

    def close(self) -> None:
        pass


@pytest.fixture
def make_window(qtbot):
    windows = []

    def make(cameras: list[Camera]) -> tuple[MainWindow, Feed]:
        feed = Feed(cameras)
        win = MainWindow(feed, "people")  # type: ignore[arg-type]
        qtbot.addWidget(win)
        win.resize(1600, 900)
        win.show()
        qtbot.waitExposed(win)
        windows.append(win)
        return win, feed

    yield make
    for win in windows:
        win.shutdown()


def show(win: MainWindow, feed: Feed, est: BodyEstimate) -> None:
    feed.estimate = est
    win.refresh()


def view_pixel(view: CameraView, grab: np.ndarray, px: np.ndarray) -> np.ndarray:
    """The grabbed colour (RGB) at source pixel ``px`` of ``view``'s image."""
    rect = view.target_rect()
    scale = rect.width() / SIZE[0]
    return grab[int(round(rect.y() + px[1] * scale)), int(round(rect.x() + px[0] * scale))].astype(int)


def near(grab: np.ndarray, view: CameraView, px: np.ndarray, rgb: tuple[int, int, int], tol: int = 12) -> bool:
    """Some pixel within 2 px of source pixel ``px`` has colour ``rgb``."""
    rect = view.target_rect()
    scale = rect.width() / SIZE[0]
    r, c = int(round(rect.y() + px[1] * scale)), int(round(rect.x() + px[0] * scale))
    patch = grab[r - 2 : r + 3, c - 2 : c + 3].astype(int)
    return bool(np.any(np.all(np.abs(patch - np.array(rgb)) <= tol, axis=-1)))


def three_people(cameras: list[Camera], t: float = 75.0) -> list[Person]:
    return [person(1, -1.0, cameras, 10.0), person(2, 0.0, cameras, 60.0), person(3, 1.0, cameras, 74.2)]


def test_each_person_is_drawn_in_their_colour_in_the_camera_views(make_window) -> None:
    cameras = room()
    win, feed = make_window(cameras)
    people = three_people(cameras)
    show(win, feed, estimate(cameras, people))
    view = win.grid.views["cam1"]
    assert sorted(b.id for b in view.bodies) == [1, 2, 3]
    # far to near, so that the nearest person is drawn on top: cam2 looks from +x, cam4 from -x
    assert [b.id for b in win.grid.views["cam2"].bodies] == [1, 2, 3]
    assert [b.id for b in win.grid.views["cam4"].bodies] == [3, 2, 1]
    assert len({person_color(p.id) for p in people}) == 3
    win.set_overlay("mesh")
    grab = image_array(view.grab().toImage())
    for p in people:
        quad = p.views["cam1"]
        assert quad.mesh_px is not None
        centre = view_pixel(view, grab, quad.mesh_px.mean(axis=0))
        # Semi-transparent shaded mesh over the grey image: 0.6 x shade x colour + 0.4 x grey, the quad
        # faces the camera (shade = cosine of the angle to the viewing ray, 0.98-1.0 here).
        expected = 0.6 * 0.99 * np.array(person_color(p.id)) + 0.4 * BACKGROUND
        assert np.abs(centre - expected).max() <= 8, (p.id, centre, expected)
    win.set_overlay("skeleton")
    grab = image_array(view.grab().toImage())
    for p in people:
        points = p.keypoints2d["cam1"].points
        thigh = (points[11, :2] + points[13, :2]) / 2  # the middle of the left thigh bone
        assert near(grab, view, thigh, person_color(p.id), tol=6)
        others = [q.id for q in people if q.id != p.id]
        assert not any(near(grab, view, thigh, person_color(o), tol=30) for o in others)
        # the id tag sits above the head: its colour fills the middle of the tag
        head = points[:, 1].min()
        tag = np.array([points[:, 0].mean(), head - 21 / (view.target_rect().width() / SIZE[0])])
        assert near(grab, view, tag, person_color(p.id), tol=6)


def test_side_list_viewport_and_status_follow_the_people(make_window, qtbot) -> None:
    cameras = room()
    win, feed = make_window(cameras)
    show(win, feed, estimate(cameras, three_people(cameras), t=75.0))
    assert win.people.isVisible()
    assert win.people.row_texts() == [("#1", "—", "1:05"), ("#2", "—", "0:15"), ("#3", "—", "0:00")]
    assert "3 people" in win.status.text()
    viewport = win.viewport
    assert sorted(viewport.people_items) == [1, 2, 3]
    for items in viewport.people_items.values():
        assert items.mesh in viewport.items and items.mesh.visible() and items.label.visible()
    assert not viewport.mesh.visible() and not viewport.bones.visible()  # the single-body items stay hidden
    # Each mesh is drawn in its person's colour: hiding it uncovers pixels whose hue was that colour.
    palette = np.array(PALETTE, float) / np.linalg.norm(PALETTE, axis=1, keepdims=True)
    for pid, items in viewport.people_items.items():
        with_mesh = image_array(viewport.grabFramebuffer()).astype(float)
        items.mesh.setVisible(False)
        without = image_array(viewport.grabFramebuffer()).astype(float)
        items.mesh.setVisible(True)
        body = np.abs(with_mesh - without).sum(axis=-1) > 40
        assert body.mean() > 0.001, pid
        mean = with_mesh[body].mean(axis=0)
        assert int(np.argmax(palette @ (mean / np.linalg.norm(mean)))) == pid - 1, (pid, mean)
    label_1 = viewport.people_items[1].label
    assert label_1.text == "#1" and label_1.pos[2] == pytest.approx(1.66 + 0.25)
    with_label = image_array(viewport.grabFramebuffer()).astype(float)
    label_1.setVisible(False)
    text = np.abs(with_label - image_array(viewport.grabFramebuffer()).astype(float)).sum(axis=-1) > 60
    label_1.setVisible(True)
    assert text.sum() > 20  # "#1" is drawn, in blue
    assert int(np.argmax(palette @ with_label[text].mean(axis=0))) == 0
    in_window = image_array(win.grab().toImage()).astype(float)  # screenshots (--screenshot) show it too
    label_1.setVisible(False)
    text = np.abs(in_window - image_array(win.grab().toImage()).astype(float)).sum(axis=-1) > 60
    label_1.setVisible(True)
    assert text.sum() > 20 and int(np.argmax(palette @ in_window[text].mean(axis=0))) == 0
    row_of_3 = win.people.item(2, 0)
    # Person 2 leaves: their row and their viewport items go; the others are updated in place.
    people = three_people(cameras)
    gone = viewport.people_items[2]
    show(win, feed, estimate(cameras, [people[0], people[2]], t=80.0, index=1))
    assert win.people.row_texts() == [("#1", "—", "1:10"), ("#3", "—", "0:05")]
    assert win.people.item(1, 0) is row_of_3
    assert sorted(viewport.people_items) == [1, 3] and gone.mesh not in viewport.items and gone.label not in viewport.items
    assert "2 people" in win.status.text()
    assert [b.id for b in win.grid.views["cam2"].bodies] == [1, 3]
    # Someone new arrives with id 5: a row in id order, new items in the palette's fifth colour.
    show(win, feed, estimate(cameras, [people[0], person(5, 2.0, cameras, 80.0), people[2]], t=81.0, index=2))
    assert [r[0] for r in win.people.row_texts()] == ["#1", "#3", "#5"]
    assert viewport.people_items[5].mesh.opts["color"][:3] == pytest.approx(np.array(PALETTE[4]) / 255)
    assert PER_VIEW_PEOPLE not in win.notice.toolTip()  # calibrated: nothing to say
    qtbot.wait(100)  # the people list's first layout
    shot = win.grab()
    assert shot.save(str(SHOT))


def test_time_seen_keeps_counting_when_a_replay_loops(make_window) -> None:
    """The bundled demo is a 1.7 s loop, and the tracker starts again with each loop (first_seen
    goes back with the frame-sets' time): someone who stays in the list stays seen, and the time
    grows by the time played, a step per set across each loop too; someone new after a loop
    starts from 0:00."""
    cameras = room()
    win, feed = make_window(cameras)
    people = three_people(cameras)[:2]
    index = 0
    for loop in range(25):  # sets every 0.2 s from 0.1 to 1.5 s of the recording, 25 times
        for p in people:
            p.first_seen = 0.1
        for k in range(8):
            show(win, feed, estimate(cameras, people, t=0.1 + 0.2 * k, index=index))
            index += 1
        if loop == 0:
            assert [r[2] for r in win.people.row_texts()] == ["0:01", "0:01"]  # 1.4 s
    # 200 sets 0.2 s apart: 39.8 s (without the step across each loop, 35.0 s)
    assert [r[2] for r in win.people.row_texts()] == ["0:39", "0:39"]
    show(win, feed, estimate(cameras, people, t=0.1, index=index))  # another loop
    show(win, feed, estimate(cameras, [*people, person(5, 2.0, cameras, 0.3)], t=0.3, index=index + 1))
    assert win.people.row_texts()[2][0] == "#5"
    assert [r[2] for r in win.people.row_texts()] == ["0:40", "0:40", "0:00"]


def test_a_result_without_people_displays_as_before(make_window) -> None:
    cameras = room()
    win, feed = make_window(cameras)
    single = person(1, 0.0, cameras)
    old = estimate(cameras, [single])
    old.people = []  # a keypoints-only run or an old code path: the top-level fields only
    show(win, feed, old)
    view = win.grid.views["cam1"]
    assert [b.id for b in view.bodies] == [None] and view.shows_mesh
    assert not win.people.isVisible() and not win.viewport.people_items
    assert win.viewport.mesh.visible() and win.viewport.bones.visible()
    assert "people" not in win.status.text() and "person" not in win.status.text()
    win.set_overlay("skeleton")
    grab = image_array(view.grab().toImage())
    points = single.keypoints2d["cam1"].points
    right_thigh = (points[12, :2] + points[14, :2]) / 2
    assert near(grab, view, right_thigh, (COLOR_RIGHT.red(), COLOR_RIGHT.green(), COLOR_RIGHT.blue()), tol=6)
    win.set_overlay("mesh")
    grab = image_array(view.grab().toImage())
    assert single.views["cam1"].mesh_px is not None
    centre = view_pixel(view, grab, single.views["cam1"].mesh_px.mean(axis=0))
    expected = 0.6 * 0.99 * np.array(OVERLAY_COLOR[::-1]) + 0.4 * BACKGROUND  # the light green of one body
    assert np.abs(centre - expected).max() <= 8


def test_uncalibrated_rig_says_people_are_tracked_per_view(make_window) -> None:
    calibrated = room()[:2]
    cameras = [uncalibrated(c.name, c.image_size) for c in calibrated]
    win, feed = make_window(cameras)
    # Per view: cam1 tracks people 1 and 2, cam2 tracks person 3 (the same two people, other ids).
    a, b, c = person(1, -0.5, calibrated[:1]), person(2, 0.5, calibrated[:1]), person(3, 0.0, calibrated[1:])
    for p in (a, b, c):
        p.keypoints3d, p.mesh3d = None, None
    for i in range(3):
        show(win, feed, estimate(cameras, [a, b, c], t=75.0 + i, index=i))
    assert [d.id for d in win.grid.views["cam1"].bodies] == [1, 2]
    assert [d.id for d in win.grid.views["cam2"].bodies] == [3]
    assert win.notice.text().startswith("⚠ Uncalibrated: people are tracked in each view separately")
    assert win.notice.toolTip().split("\n").count(PER_VIEW_PEOPLE) == 1  # said once
    assert "2 people (3 tracked, each in one view)" in win.status.text()  # the most one view tracks, as the monitor counts
    assert all(not items.mesh.visible() and not items.label.visible() for items in win.viewport.people_items.values())
    assert win.load_calibration("room.toml")  # calibrated from now on: the notice goes
    win.refresh()
    assert win.notice.text() == "" and PER_VIEW_PEOPLE not in win.notice.toolTip()


def test_minutes_seconds() -> None:
    assert [minutes_seconds(s) for s in (0, 5.9, 65, 600, -3)] == ["0:00", "0:05", "1:05", "10:00", "0:00"]


def test_body_mesh_normals_match_pyqtgraph_and_known_geometry(body) -> None:
    from app.viewport import BodyMeshData, vertex_normals

    square = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [5, 5, 5]], np.float32)  # the last is in no face
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    assert np.allclose(vertex_normals(square, faces)[:4], [0, 0, 1]) and np.allclose(vertex_normals(square, faces)[4], 0)
    pyramid = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)  # the corner's normal points out
    corner = vertex_normals(pyramid, np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2]]))[0]
    assert np.allclose(corner, -np.ones(3) / np.sqrt(3))
    vertices, body_faces = body.v_template.numpy().astype(np.float32), np.asarray(body.faces, np.int64)
    ours = BodyMeshData(vertexes=vertices, faces=body_faces).vertexNormals(indexed="faces")
    assert np.allclose(ours, gl.MeshData(vertexes=vertices, faces=body_faces).vertexNormals(indexed="faces"), atol=1e-5)


def test_views_shrink_frames_like_area_averaging() -> None:
    from app.camera_view import shrink

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (1920, 1080, 3), dtype=np.uint8), (0, 0), 3)
    small = shrink(image, (331, 589))
    assert small.shape == (589, 331, 3)
    reference = cv2.resize(image, (331, 589), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(small - reference).mean() < 2.0
    assert shrink(image, (1080, 1920)) is image
