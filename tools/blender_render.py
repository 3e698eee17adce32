"""Render one frame of a ``.glb`` export (recording.exports.glb) to a PNG with Blender, headless.

    blender -b --python tools/blender_render.py -- --glb F.glb --frame N --out F.png
        [--width 640] [--height 480] [--engine workbench|eevee|cycles]

Frame N is the motion's frame N (the scene runs at the export's frame rate, frame 0 = the first
frame). The camera looks at the body from the front (the way the pelvis faces), a little above.
Runs inside Blender's Python: :func:`prepare_blender_python` is also what the export tests use to
make Blender's glTF importer work where Blender's own Python lacks numpy (Debian's blender package
without python3-numpy) or has a numpy without the ``np.bool`` alias Blender 3.4's importer uses.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def prepare_blender_python() -> None:
    """Make numpy importable for Blender's glTF importer (falling back on this repo's ``.venv``,
    saying so) and give numpy back the ``bool`` alias Blender 3.4's importer still uses."""
    try:
        import numpy
    except ImportError:
        found = sorted(REPO.glob(".venv/lib/python3*/site-packages"))
        if not found:
            raise SystemExit("blender_render: Blender's Python has no numpy and there is no .venv in " + str(REPO)) from None
        print(f"blender_render: Blender's Python has no numpy; using {found[0]}")
        sys.path.append(str(found[0]))
        import numpy
    if "bool" not in vars(numpy):  # removed in numpy 1.24 (asking for it warns)
        numpy.bool = bool  # type: ignore[attr-defined]


def glb_extras(path: Path) -> dict[str, Any]:
    """The ``asset.extras`` of a ``.glb`` (its JSON chunk), ``{}`` when there are none."""
    data = path.read_bytes()
    if data[:4] != b"glTF":
        raise SystemExit(f"blender_render: {path} is not a .glb file")
    length = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(data[20 : 20 + length])
    return dict(doc.get("asset", {}).get("extras") or {})


def import_glb(path: Path) -> tuple[Any, Any]:
    """A fresh scene at the export's frame rate with the ``.glb`` imported; returns (armature, mesh)."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = max(1, round(float(glb_extras(path).get("fps", 30.0))))
    scene.render.fps_base = 1.0
    bpy.ops.import_scene.gltf(filepath=str(path))
    armature = next(o for o in scene.objects if o.type == "ARMATURE")
    mesh = next(o for o in scene.objects if o.type == "MESH")
    return armature, mesh


def _frame_camera(scene: Any, armature: Any, mesh: Any, width: int, height: int) -> None:
    import bpy
    from mathutils import Vector

    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = mesh.evaluated_get(depsgraph)
    points = [evaluated.matrix_world @ v.co for v in evaluated.to_mesh().vertices]
    evaluated.to_mesh_clear()
    low = Vector([min(p[k] for p in points) for k in range(3)])
    high = Vector([max(p[k] for p in points) for k in range(3)])
    center = (low + high) / 2
    bones = armature.pose.bones
    side = (armature.matrix_world @ bones["left_hip"].head) - (armature.matrix_world @ bones["right_hip"].head)
    forward = side.cross(Vector((0.0, 0.0, 1.0)))
    forward.z = 0.0
    forward = forward.normalized() if forward.length > 1e-6 else Vector((0.0, -1.0, 0.0))
    size = max((high - low).length, 1.0)
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    camera.data.lens = 35.0
    camera.location = center + forward * 1.3 * size + Vector((0.0, 0.0, 0.15 * size))
    camera.rotation_euler = (center - camera.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera
    _add_floor(scene, center, low.z, size)


def _add_floor(scene: Any, center: Any, z: float, size: float) -> None:
    import bpy

    bpy.ops.mesh.primitive_plane_add(size=6.0 * size, location=(center.x, center.y, z))
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", type="SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (0.6, 0.2, 0.8)
    scene.collection.objects.link(sun)


def render(glb: Path, frame: int, out: Path, width: int, height: int, engine: str) -> None:
    import bpy

    armature, mesh = import_glb(glb)
    scene = bpy.context.scene
    scene.frame_set(frame)
    _frame_camera(scene, armature, mesh, width, height)
    scene.render.engine = {"workbench": "BLENDER_WORKBENCH", "eevee": "BLENDER_EEVEE", "cycles": "CYCLES"}[engine]
    if engine == "cycles":
        scene.cycles.samples = 16
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(out.resolve())
    world = bpy.data.worlds.new("world")
    world.color = (0.8, 0.8, 0.85)
    scene.world = world
    bpy.ops.render.render(write_still=True)
    print(f"blender_render: wrote {out} (frame {frame}, {width}x{height}, {engine})")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="blender -b --python tools/blender_render.py --")
    parser.add_argument("--glb", type=Path, required=True)
    parser.add_argument("--frame", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--engine", choices=("workbench", "eevee", "cycles"), default="workbench")
    args = parser.parse_args(argv)
    prepare_blender_python()
    render(args.glb, args.frame, args.out, args.width, args.height, args.engine)


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else [])
