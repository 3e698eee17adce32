"""Mirror-symmetric half-edge-collapse decimation of a closed triangle mesh.

Each step removes a vertex by moving it onto a neighbour (quadric error metric cost), together
with its mirror image, so the result keeps (a) left/right symmetry, (b) a subset of the original
vertices at their original positions (skin weights and shape targets carry over by indexing), and
(c) a closed 2-manifold of the same genus (link condition, no flipped faces).
"""

from __future__ import annotations

import heapq

import numpy as np


def triangulate_quads(vertices: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Split each quad along its shorter diagonal (mirror-consistent for a symmetric mesh)."""
    a, b, c, d = quads.T
    d_ac = np.linalg.norm(vertices[a] - vertices[c], axis=1)
    d_bd = np.linalg.norm(vertices[b] - vertices[d], axis=1)
    use_ac = d_ac <= d_bd
    t1 = np.where(use_ac[:, None], np.stack([a, b, c], 1), np.stack([a, b, d], 1))
    t2 = np.where(use_ac[:, None], np.stack([a, c, d], 1), np.stack([b, c, d], 1))
    return np.concatenate([t1, t2])


class _Mesh:
    def __init__(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        self.v = vertices
        self.faces = [list(f) for f in faces]
        self.alive = [True] * len(self.faces)
        self.vfaces: list[set[int]] = [set() for _ in range(len(vertices))]
        for i, f in enumerate(self.faces):
            for x in f:
                self.vfaces[x].add(i)
        self.removed = np.zeros(len(vertices), bool)
        self.quadrics = self._quadrics()

    def _quadrics(self) -> np.ndarray:
        Q = np.zeros((len(self.v), 4, 4))
        f = np.array(self.faces)
        n = np.cross(self.v[f[:, 1]] - self.v[f[:, 0]], self.v[f[:, 2]] - self.v[f[:, 0]])
        area = np.linalg.norm(n, axis=1, keepdims=True)
        n = n / np.maximum(area, 1e-20)
        plane = np.hstack([n, -(n * self.v[f[:, 0]]).sum(1, keepdims=True)])
        K = plane[:, :, None] * plane[:, None, :] * area[:, :, None]
        for k in range(3):
            np.add.at(Q, f[:, k], K)
        return Q

    def neighbours(self, x: int) -> set[int]:
        return {y for fi in self.vfaces[x] for y in self.faces[fi]} - {x}

    def cost(self, b: int, a: int) -> float:
        p = np.append(self.v[a], 1.0)
        return float(p @ (self.quadrics[a] + self.quadrics[b]) @ p)

    def can_collapse(self, b: int, a: int) -> bool:
        """Move b onto a: link condition and no flipped or degenerate faces."""
        if self.removed[a] or self.removed[b]:
            return False
        shared = [fi for fi in self.vfaces[b] if a in self.faces[fi]]
        if len(shared) != 2:
            return False
        opposite = {y for fi in shared for y in self.faces[fi]} - {a, b}
        if self.neighbours(a) & self.neighbours(b) != opposite:
            return False
        if len(self.vfaces[a]) + len(self.vfaces[b]) - 4 < 3:
            return False
        for fi in self.vfaces[b]:
            if fi in shared:
                continue
            f = self.faces[fi]
            old = self._normal(f)
            new = self._normal([a if x == b else x for x in f])
            if np.linalg.norm(new) < 1e-12 or np.dot(old, new) <= 0.2 * np.linalg.norm(old) * np.linalg.norm(new):
                return False
        return True

    def collapse(self, b: int, a: int) -> None:
        for fi in list(self.vfaces[b]):
            f = self.faces[fi]
            if a in f:
                self.alive[fi] = False
                for x in f:
                    self.vfaces[x].discard(fi)
            else:
                self.faces[fi] = [a if x == b else x for x in f]
                self.vfaces[a].add(fi)
        self.vfaces[b] = set()
        self.removed[b] = True
        self.quadrics[a] += self.quadrics[b]

    def _normal(self, f: list[int]) -> np.ndarray:
        p = self.v[f]
        return np.cross(p[1] - p[0], p[2] - p[0])


def decimate_symmetric(
    vertices: np.ndarray, faces: np.ndarray, mirror: np.ndarray, target_vertices: int, protect: set[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Reduce to exactly ``target_vertices``. Returns (kept vertex indices, faces in those
    original indices). ``mirror[i]`` is the mirror vertex of i (itself on the mid-plane);
    ``protect`` vertices are never removed."""
    mesh = _Mesh(vertices, faces)
    protect = set(protect or ())
    protect |= {int(mirror[p]) for p in protect}
    count = len(vertices)
    heap: list[tuple[float, int, int]] = []

    def push(x: int) -> None:
        for y in mesh.neighbours(x):
            for b, a in ((x, y), (y, x)):
                if b not in protect:
                    heapq.heappush(heap, (_pair_cost(mesh, mirror, b, a), b, a))

    for x in range(len(vertices)):
        push(x)
    while count > target_vertices and heap:
        cost, b, a = heapq.heappop(heap)
        if mesh.removed[a] or mesh.removed[b] or a not in mesh.neighbours(b):
            continue
        if abs(cost - _pair_cost(mesh, mirror, b, a)) > 1e-12 * max(1.0, abs(cost)):
            continue  # stale entry (a quadric changed); a fresh one was pushed
        mb, ma = int(mirror[b]), int(mirror[a])
        if (mb, ma) == (b, a):  # both on the mid-plane: a single collapse
            if not mesh.can_collapse(b, a):
                continue
            mesh.collapse(b, a)
            count -= 1
        else:
            if (mb, ma) == (a, b) or count - target_vertices < 2:
                continue  # crosses the mid-plane, or one vertex left to remove
            ring_b = mesh.neighbours(b) | {b, a}
            ring_mb = mesh.neighbours(mb) | {mb, ma}
            if ring_b & ring_mb or not (mesh.can_collapse(b, a) and mesh.can_collapse(mb, ma)):
                continue
            mesh.collapse(b, a)
            mesh.collapse(mb, ma)
            count -= 2
            push(ma)
        push(a)
    if count != target_vertices:
        raise RuntimeError(f"decimation stopped at {count} vertices (target {target_vertices})")
    kept = np.flatnonzero(~mesh.removed)
    out = np.array([f for f, ok in zip(mesh.faces, mesh.alive, strict=True) if ok])
    return kept, out


def _pair_cost(mesh: _Mesh, mirror: np.ndarray, b: int, a: int) -> float:
    mb, ma = int(mirror[b]), int(mirror[a])
    if (mb, ma) == (b, a):
        return mesh.cost(b, a)
    return mesh.cost(b, a) + mesh.cost(mb, ma)
