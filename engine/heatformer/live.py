"""HeatFormer in the live pipeline: after detection (and triangulation), one body per frame-set,
with everything the display needs (a mesh per camera view, a mesh for the 3D viewport)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from core.camera import Camera, project_views, rig_calibrated
from core.geometry import matrix_to_rodrigues, undistort_pixels
from core.types import COCO17_MIRROR, BodyEstimate, BodyParams, FrameBody, Keypoints2D, ViewEstimate
from engine.body.render import display_mesh
from engine.heatformer.inference import Runner, estimate_frames, heatformer_iterations, refine_bodies
from engine.heatformer.inputs import L_HIP, R_HIP
from engine.heatformer.model import HeatFormer
from engine.heatformer.refine import project_view
from engine.heatformer.temporal import BodyFilter, FilterStep, ViewFilter, body_points, keypoint_weight, rotations_of
from engine.heatformer.turns import Heading, settle_turns
from engine.triangulate import triangulate_views

WEAK_DEPTH = 20.0  # metres: weak-perspective meshes are culled and ordered as if seen from this far


class LiveBody:
    """Fills a :class:`BodyEstimate`'s ``body``, ``views``, ``fused``, ``mesh3d`` and
    ``mesh_faces`` from its 2D keypoints. ``calibrated``: use the cameras' calibration (one world
    body); otherwise every view gets its own body (pose and shape shared), fitted through a lens
    of an assumed field of view when ``refine`` (engine.heatformer.refine.assumed_lens).
    ``temporal``: filter the fused body over time (engine.heatformer.temporal.BodyFilter), or
    uncalibrated each view's body (ViewFilter).
    ``refine``: fit the fused body to the views' keypoints after HeatFormer, starting from
    HeatFormer's answer and pulled towards the previous frame-set's body (engine.heatformer.refine).
    ``display``: also make the meshes the display needs (off for results files)."""

    def __init__(
        self,
        model: HeatFormer,
        cameras: list[Camera],
        calibrated: bool,
        runner: Runner | None = None,
        temporal: bool = True,
        refine: bool = True,
        display: bool = True,
    ) -> None:
        self.model = model.eval()
        self.display = display  # False: the body only, no meshes (offline results)
        self.runner = runner  # an inference backend (engine.backends.HeatFormerRunner); None = the model
        self.cameras = list(cameras)
        self.image_sizes = np.array([c.image_size for c in cameras], np.float64)  # [V, 2] (w, h): the uncalibrated fit's lenses
        self.calibrated = calibrated and rig_calibrated(cameras)
        self.filter = BodyFilter(model.body) if temporal else None  # one person for now
        self.view_filter = ViewFilter(model.body) if temporal and not self.calibrated else None  # uncalibrated: each view's body
        self.refine = refine
        self.previous: FrameBody | None = None  # the last fused body (the refinement's temporal pull)
        self.heading: Heading | None = None  # which way the last one-view body faced (engine.heatformer.turns)
        body = model.body
        self.faces = np.asarray(body.faces, np.int64)
        # What is shown, in the views and the 3D viewport alike: the coarse display mesh (its vertices
        # alone are skinned), or the whole mesh for a body of another topology.
        count = int(body.v_template.shape[0])
        coarse = display_mesh(count)
        self.display_vertices = torch.as_tensor(np.arange(count) if coarse is None else coarse[0], dtype=torch.long)
        self.display_faces: np.ndarray = self.faces if coarse is None else coarse[1]
        if self.calibrated:
            stack = lambda attr: np.stack([getattr(c, attr) for c in cameras]).astype(np.float64)  # noqa: E731
            self.K, self.R, self.t = stack("K"), stack("R"), stack("t")
            self.dist = np.stack([c.dist for c in cameras]).astype(np.float64)

    def for_cameras(self, cameras: list[Camera]) -> LiveBody:
        """The same model for other cameras (calibrated when they all are)."""
        return LiveBody(
            self.model, cameras, calibrated=rig_calibrated(cameras), runner=self.runner, temporal=self.filter is not None,
            refine=self.refine, display=self.display,
        )  # fmt: skip

    def fork(self) -> LiveBody:
        """The same model and cameras for another person: its own filter and warm start."""
        twin = copy.copy(self)
        twin.filter = BodyFilter(self.model.body) if self.filter is not None else None
        twin.view_filter = ViewFilter(self.model.body) if self.view_filter is not None else None
        twin.previous = None
        twin.heading = None
        return twin

    def __call__(self, estimate: BodyEstimate) -> FrameBody:
        frame, keypoints = self.propose(estimate)
        self.fit([frame], [keypoints], [self.previous])
        keep_facing([(self, frame, keypoints)], estimate.timestamp)
        return self.finish(estimate, frame, keypoints)

    def fit(self, frames: list[FrameBody], keypoints: list[np.ndarray], previous: list[FrameBody | None]) -> None:
        """The fit after HeatFormer, when ``refine`` is on, of several people's proposed bodies in one
        batched call (engine.heatformer.inference.refine_bodies), to their keypoints as
        :meth:`propose_all` gave them (undistorted already when calibrated)."""
        if not self.refine:
            return
        if self.calibrated:
            refine_bodies(self.model, frames, keypoints, self.K, self.R, self.t, None, previous)
        else:
            refine_bodies(self.model, frames, keypoints, previous=previous, image_size=self.image_sizes)

    def propose(self, estimate: BodyEstimate) -> tuple[FrameBody, np.ndarray]:
        """HeatFormer's body for the estimate's keypoints (not refined yet), and those keypoints
        ``[V, 17, 3]`` in camera order, undistorted when calibrated (ideal pixels: what
        :meth:`fit` compares the body with)."""
        return self.propose_all([estimate])[0]

    def propose_all(self, estimates: list[BodyEstimate]) -> list[tuple[FrameBody, np.ndarray]]:
        """:meth:`propose` for several people seen by these cameras (one estimate each), with
        HeatFormer batched over them (engine.heatformer.inference.estimate_frames)."""
        empty = np.zeros((17, 3), np.float32)
        keypoints = [
            np.stack([e.keypoints2d[c.name].points if c.name in e.keypoints2d else empty for c in self.cameras]).astype(
                np.float64
            )
            for e in estimates
        ]
        if self.calibrated:
            for points in keypoints:  # undistorted once here, for HeatFormer's inputs and the fit alike
                for v in np.flatnonzero((points[..., 2] > 0).any(axis=1)):
                    points[v, :, :2] = undistort_pixels(points[v, :, :2], self.K[v], self.dist[v])
            roots = [self._root(e) for e in estimates]
            iterations = heatformer_iterations(self.refine)
            frames = estimate_frames(self.model, keypoints, self.K, self.R, self.t, None, roots, self.runner, iterations)
        else:
            frames = estimate_frames(self.model, keypoints, runner=self.runner)
        return list(zip(frames, keypoints, strict=True))

    def finish(self, estimate: BodyEstimate, frame: FrameBody, keypoints: np.ndarray) -> FrameBody:
        """The (refined) body remembered for the next frame-set, filtered over time and shown:
        fills the estimate's ``body``, ``views``, ``fused``, ``mesh3d`` and ``mesh_faces``. A view
        the fit took mirrored (``frame.mirrored``: its detector exchanged left and right) has its
        keypoints in ``estimate.keypoints2d`` exchanged back, and the 3D keypoints (when there are)
        are triangulated again from them, so that both are shown and recorded with the body's sides."""
        return finish_all([(self, estimate, frame, keypoints)])[0]

    @staticmethod
    def _root(estimate: BodyEstimate) -> np.ndarray | None:
        """The mid-hip from the pipeline's triangulation (outlier views already left out)."""
        k3d = estimate.keypoints3d
        if k3d is None or not (k3d[[L_HIP, R_HIP], 3] > 0).all() or not np.isfinite(k3d[[L_HIP, R_HIP], :3]).all():
            return None
        return 0.5 * (k3d[L_HIP, :3] + k3d[R_HIP, :3])

    def _posed(self, betas: np.ndarray, rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bodies at the origin: display-mesh vertices ``[N, n, 3]``, joints ``[N, 24, 3]`` and
        mid-hips ``[N, 3]`` for betas ``[N, B]`` and rotations ``[N, 24, 3, 3]``."""
        body = self.model.body
        b, r = torch.as_tensor(betas, dtype=torch.float32), torch.as_tensor(rotations, dtype=torch.float32)
        with torch.no_grad():
            out = body.joints_rotmat(b, r)
            assert out.keypoints is not None and out.transforms is not None
            vertices = body.skin_vertices(b, r, out.transforms, self.display_vertices)
        mid = 0.5 * (out.keypoints[:, L_HIP] + out.keypoints[:, R_HIP])
        return vertices.double().numpy(), out.joints.double().numpy(), mid.double().numpy()

    def _exchange_back(self, estimate: BodyEstimate, mirrored: np.ndarray) -> None:
        for camera, flipped in zip(self.cameras, mirrored, strict=True):
            seen = estimate.keypoints2d.get(camera.name)
            if flipped and seen is not None:
                estimate.keypoints2d[camera.name] = Keypoints2D(seen.camera, seen.points[COCO17_MIRROR])
        if self.calibrated and estimate.keypoints3d is not None:
            empty = np.zeros((17, 3), np.float32)
            found = [estimate.keypoints2d[c.name].points if c.name in estimate.keypoints2d else empty for c in self.cameras]
            again = triangulate_views(self.cameras, np.stack(found))
            estimate.keypoints3d = again.points
            errors = again.errors_px
            estimate.reprojection_px = {name: errors[name] for name in estimate.reprojection_px if name in errors}

    def _show_fused(self, estimate: BodyEstimate, frame: FrameBody, vertices: np.ndarray) -> None:
        """The fused body shown: its display mesh ``vertices`` ``[n, 3]`` posed at the origin placed
        in the world, and in every view its parameters and that mesh."""
        assert frame.orient is not None and frame.pose is not None and frame.betas is not None and frame.transl is not None
        coarse = vertices + frame.transl
        estimate.mesh3d = coarse
        pose = matrix_to_rodrigues(frame.pose)
        estimate.fused = BodyParams(matrix_to_rodrigues(frame.orient), pose, frame.betas, frame.transl)
        shown = [i for i, camera in enumerate(self.cameras) if camera.name in estimate.frameset.frames]
        if not shown:
            return
        R, t = self.R[shown], self.t[shown]  # every view at once: [S, ...]
        orients = matrix_to_rodrigues(R @ frame.orient)
        transl = R @ frame.transl + t
        in_camera = coarse[None] @ np.swapaxes(R, 1, 2) + t[:, None]
        pixels = project_views([self.cameras[i] for i in shown], coarse)
        for k, i in enumerate(shown):
            camera = self.cameras[i]
            params = BodyParams(orients[k], pose, frame.betas, transl[k])
            estimate.views[camera.name] = ViewEstimate(
                camera, params, frame.view_cam[i], in_camera[k], pixels[k], self.display_faces
            )

    def _show_per_view(self, estimate: BodyEstimate, frame: FrameBody) -> None:
        use = np.flatnonzero(frame.used)
        rotations = np.concatenate([frame.view_orient[use, None], frame.view_pose[use]], axis=1)
        vertices, _, mids = self._posed(frame.view_betas[use], rotations)
        for k, i in enumerate(use):
            camera = self.cameras[i]
            coarse = vertices[k] - mids[k]  # camera frame, mid-hip at the origin
            scale, tx, ty = frame.view_cam[i]
            x0, y0, size = frame.view_boxes[i]
            if frame.view_lens is None:  # HeatFormer's own answer: its weak-perspective camera
                crop = 0.5 * np.exp(scale) * coarse[:, :2] + 0.5 + np.array([tx, ty])
            else:  # fitted through the view's lens: seen through it
                crop = project_view(torch.from_numpy(coarse), torch.from_numpy(frame.view_cam[i]),
                                    torch.from_numpy(frame.view_lens[i])).numpy()  # fmt: skip
            params = BodyParams(matrix_to_rodrigues(frame.view_orient[i]), matrix_to_rodrigues(frame.view_pose[i]),
                                frame.view_betas[i], np.zeros(3))  # fmt: skip
            estimate.views[camera.name] = ViewEstimate(
                camera, params, frame.view_cam[i].copy(),
                coarse + np.array([0.0, 0.0, WEAK_DEPTH]), np.array([x0, y0]) + size * crop, self.display_faces,
            )  # fmt: skip
            if estimate.mesh3d is None:  # the 3D viewport shows the first view's body, standing on the grid
                estimate.mesh3d = reference_pose(coarse)


def keep_facing(people: list[tuple[LiveBody, FrameBody, np.ndarray]], now: float) -> None:
    """Uncalibrated, each person's one-view body checked against the way it faced at the last
    frame-set (engine.heatformer.turns.settle_turns: a detection with left and right exchanged for
    a moment turns such a body round), everyone in one call; ``(live body, fitted frame, keypoints)``
    each, ``now`` the frame-set's time. A calibrated room checks mirrored views against the others
    (engine.heatformer.refine.settle_mirrored)."""
    if not people or people[0][0].calibrated:
        return
    first = people[0][0]
    headings = settle_turns(
        first.model, [f for _, f, _ in people], [k for _, _, k in people], [live.heading for live, _, _ in people], now,
        first.image_sizes, first.runner, first.refine,
    )  # fmt: skip
    for (live, _, _), heading in zip(people, headings, strict=True):
        live.heading = heading


def finish_all(people: list[tuple[LiveBody, BodyEstimate, FrameBody, np.ndarray]]) -> list[FrameBody]:
    """:meth:`LiveBody.finish` for several people seen by the same cameras, each with their own
    state (``(live body, estimate, frame, keypoints)`` each): the bodies are posed in at most two
    calls of the body model for everyone, their own bodies' mid-hips for the filters
    (engine.heatformer.temporal.BodyFilter.begin / complete), then the bodies shown, with their
    meshes when displayed. Returns the frames remembered and shown."""
    steps: list[FilterStep | None] = []
    for live, estimate, frame, keypoints in people:
        if frame.mirrored is not None:
            live._exchange_back(estimate, frame.mirrored)
        if live.calibrated:
            live.previous = frame if frame.fused else None
        body_filter = live.filter
        steps.append(None if body_filter is None else body_filter.begin(frame, estimate.timestamp, keypoint_weight(keypoints)))
    first = people[0][0] if people else None
    display = first is not None and first.display
    # the fused bodies posed: those shown (displayed), or only those the filters need
    posed = [k for k, (_, _, frame, _) in enumerate(people) if frame.fused and (display or steps[k] is not None)]
    row = {k: i for i, k in enumerate(posed)}
    filtered = [step for step in steps if step is not None]
    vertices: np.ndarray | None = None
    if posed:
        assert first is not None
        betas, rotations = [], []
        for k in posed:
            step, frame = steps[k], people[k][2]
            betas.append(step.betas if step is not None else np.asarray(frame.betas, np.float64))
            rotations.append(step.rotations if step is not None else rotations_of(frame))
        if display:
            vertices, joints, mids = first._posed(np.stack(betas), np.stack(rotations))
        else:
            joints, mids = body_points(first.model.body, np.stack(betas), np.stack(rotations))
    if filtered:
        assert first is not None
        _, raw_mids = body_points(
            first.model.body, np.stack([s.raw_betas for s in filtered]), np.stack([s.raw for s in filtered])
        )
    out: list[FrameBody] = []
    n = 0  # filtered so far
    for k, (live, estimate, frame, keypoints) in enumerate(people):
        step = steps[k]
        if step is not None:
            assert live.filter is not None
            frame = live.filter.complete(step, raw_mids[n], joints[row[k]], mids[row[k]])
            n += 1
        elif live.view_filter is not None:  # uncalibrated view bodies (it passes anything else through)
            frame = live.view_filter.update(frame, estimate.timestamp, keypoint_weight(keypoints))
        estimate.body = frame
        estimate.mesh_faces = live.display_faces
        out.append(frame)
        if not live.display:
            continue
        if frame.fused:
            assert vertices is not None
            live._show_fused(estimate, frame, vertices[row[k]])
        elif frame.valid:
            live._show_per_view(estimate, frame)
    return out


def reference_pose(camera_vertices: np.ndarray) -> np.ndarray:
    """A view's body (camera frame: x right, y down, z forward) as the viewport shows it when
    uncalibrated: z up, the camera looking along +y, feet on the floor, mid-hip above the origin."""
    v = np.stack([camera_vertices[:, 0], camera_vertices[:, 2], -camera_vertices[:, 1]], axis=1)
    return v - np.array([0.0, 0.0, v[:, 2].min()])
