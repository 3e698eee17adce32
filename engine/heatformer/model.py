"""HeatFormer-S: HeatEncoder + an iterative neural optimizer with shared weights.

Every iteration renders heatmaps from the current body estimate (projected into every view),
encodes them into patch tokens, compares them with the observed heatmaps' tokens by attention
over all views at once, and predicts an additive update of each view's body (orientation, pose
as 6D rotations, betas, weak-perspective camera). No positional code depends on the view index,
so views may come in any order and in any number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn

from engine.body.lbs import matrix_to_rotation_6d, rotation_6d_to_matrix
from engine.body.model import BodyModel
from engine.heatformer.heatmaps import render_heatmaps
from engine.heatformer.inputs import L_HIP, R_HIP, ViewInputs

IDENTITY_6D = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
# The starting orientation: upright and facing the camera (body Y up -> camera -Y, body Z -> -Z).
FACING_6D = torch.tensor([1.0, 0.0, 0.0, 0.0, -1.0, 0.0])


@dataclass(frozen=True)
class HeatFormerConfig:
    map_size: int = 32
    sigma: float = 1.0  # map pixels
    patch: int = 8  # 4 x 4 tokens per view: the CPU budget (see assets/models/README.md)
    width: int = 128
    heads: int = 4
    layers: int = 2
    iterations: int = 3
    num_betas: int = 10
    # Also feed each view's keypoints as numbers: the observed ones to the initialisation, and
    # the observed-minus-estimated residuals to every iteration (a direct error signal, finer
    # than the 32 x 32 maps). Off in weights trained before it existed.
    keypoint_input: bool = False


@dataclass
class Estimate:
    """Per-view body state: orient ``[B, V, 6]`` (body to camera), pose ``[B, V, 23, 6]``,
    betas ``[B, V, 10]``, cam ``[B, V, 3]`` = (scale, tx, ty) weak perspective in crop units;
    keypoints2d ``[B, V, 17, 2]`` (crop coordinates) and joints ``[B, V, 24, 3]`` (camera frame,
    relative to the mid-hip) of that state; view_logit ``[B, V, 1]``: how much each view's
    proposal counted in the iteration that made the state (softmax over the views), none for the
    initial state."""

    orient: Tensor
    pose: Tensor
    betas: Tensor
    cam: Tensor
    keypoints2d: Tensor | None = None
    joints: Tensor | None = None
    view_logit: Tensor | None = None


class Attention(nn.Module):
    """Multi-head attention from plain linear layers and scaled-dot-product attention (exports to
    ONNX, unlike PyTorch's fused inference kernels)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(width, width) for _ in range(4))

    def forward(self, query: Tensor, context: Tensor) -> Tensor:
        n, lq, d = query.shape
        h = self.heads

        def split(x: Tensor) -> Tensor:
            return x.reshape(n, -1, h, d // h).transpose(1, 2)

        attended = nn.functional.scaled_dot_product_attention(
            split(self.q(query)), split(self.k(context)), split(self.v(context))
        )
        return self.out(attended.transpose(1, 2).reshape(n, lq, d))


class SelfAttentionBlock(nn.Module):
    """Pre-norm transformer block: self-attention and feed-forward."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ffn = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h)
        return x + self.ffn(self.norm2(x))


class HeatEncoder(nn.Module):
    """17 joint heatmaps -> a grid of joint-aware patch tokens (conv patch embedding mixes the
    joints inside each patch, then one self-attention layer relates the patches of a view)."""

    def __init__(self, cfg: HeatFormerConfig) -> None:
        super().__init__()
        grid = cfg.map_size // cfg.patch
        self.grid, self.patch = grid, cfg.patch
        self.embed = nn.Linear(17 * cfg.patch * cfg.patch, cfg.width)  # joint-mixing patch embedding
        self.register_buffer("position", sine_code(grid, cfg.width), persistent=False)
        self.mix = SelfAttentionBlock(cfg.width, cfg.heads)

    def forward(self, maps: Tensor) -> Tensor:
        """maps ``[N, 17, S, S]`` -> tokens ``[N, P, D]``."""
        n, g, p = maps.shape[0], self.grid, self.patch
        patches = maps.reshape(n, 17, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(n, g * g, 17 * p * p)
        tokens = self.embed(patches) + self.position
        return self.mix(tokens)


class OptimizerLayer(nn.Module):
    """Self-attention over the estimate's tokens of all views, cross-attention to the observed
    tokens of all views, feed-forward."""

    def __init__(self, cfg: HeatFormerConfig) -> None:
        super().__init__()
        d = cfg.width
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = Attention(d, cfg.heads)
        self.cross_attn = Attention(d, cfg.heads)
        self.ffn = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, q: Tensor, kv: Tensor) -> Tensor:
        h = self.norm1(q)
        q = q + self.self_attn(h, h)
        q = q + self.cross_attn(self.norm2(q), kv)
        return q + self.ffn(self.norm3(q))


class HeatFormer(nn.Module):
    def __init__(self, body: BodyModel, cfg: HeatFormerConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or HeatFormerConfig()
        self.body = body
        # Where the detector feeding this model marks its keypoints on the body (engine.heatformer.offsets):
        # used by the rooting and the refinement after the network, never by the network itself.
        self.keypoint_offsets: np.ndarray | None = None
        for p in self.body.parameters():
            p.requires_grad_(False)
        d = cfg.width
        self.encoder = HeatEncoder(cfg)
        self.init_layer = SelfAttentionBlock(d, cfg.heads)
        self.init_head = nn.Linear(d, 6 + 3)
        self.query = nn.Linear(2 * d, d)
        self.layers = nn.ModuleList(OptimizerLayer(cfg) for _ in range(cfg.layers))
        self.state_in = nn.Linear(6 + 23 * 6 + cfg.num_betas + 3, d)
        out = nn.Linear(d, 6 + 23 * 6 + cfg.num_betas + 3)
        nn.init.zeros_(out.weight)  # start from the initial estimate: no update
        nn.init.zeros_(out.bias)
        self.head = nn.Sequential(nn.LayerNorm(d), out)
        self.view_weight = nn.Linear(d, 1)  # how much each view's proposal counts
        nn.init.zeros_(self.view_weight.weight)
        nn.init.zeros_(self.view_weight.bias)
        nn.init.zeros_(self.init_head.weight)
        nn.init.zeros_(self.init_head.bias)
        if cfg.keypoint_input:
            self.init_keypoints = zero_linear(17 * 3, d)
            self.residual_in = zero_linear(17 * 5, d)

    def forward(self, inputs: ViewInputs, iterations: int | None = None) -> list[Estimate]:
        """All estimates: index 0 = initialisation, then one per iteration."""
        B, V = inputs.obs_xy.shape[:2]
        cfg = self.cfg
        observed = self._encode(inputs.obs_xy, inputs.obs_conf)  # [B, V*P, D]
        P = observed.shape[1] // V
        pooled = self.init_layer(observed).reshape(B, V, P, -1).mean(dim=2)
        seen = keypoints = torch.zeros(())  # only with keypoint_input:
        if cfg.keypoint_input:
            seen = (inputs.obs_conf > 0).to(inputs.obs_xy.dtype)[..., None]  # [B, V, 17, 1]
            # Observed keypoints as numbers [B, V, 17, 3]: centred (x2, zero where missing), confidence.
            keypoints = torch.cat([seen * (inputs.obs_xy - 0.5) * 2.0, inputs.obs_conf[..., None]], dim=-1)
            pooled = pooled + self.init_keypoints(keypoints.reshape(B, V, -1))
        init = self.init_head(pooled)
        state = Estimate(
            orient=FACING_6D.to(init) + init[..., :6],
            pose=IDENTITY_6D.to(init).expand(B, V, 23, 6),
            betas=torch.zeros(B, V, cfg.num_betas, dtype=init.dtype, device=init.device),
            cam=init[..., 6:9],
        )
        uniform = torch.full((B, V, 1), 1.0 / V, dtype=init.dtype, device=init.device)
        states = [self._pose(agree(state, uniform, inputs.R), inputs)]
        for _ in range(cfg.iterations if iterations is None else iterations):
            current = states[-1]
            assert current.keypoints2d is not None
            rendered = self._encode(current.keypoints2d, torch.ones_like(inputs.obs_conf))
            q = self.query(torch.cat([rendered, observed], dim=-1))
            q = q + self.state_in(flatten(current)).repeat_interleave(P, dim=1)
            if cfg.keypoint_input:
                residual = residual_features(inputs.obs_xy, current.keypoints2d, seen, keypoints)
                q = q + self.residual_in(residual).repeat_interleave(P, dim=1)
            for layer in self.layers:
                q = layer(q, observed)
            pooled = q.reshape(B, V, P, -1).mean(dim=2)
            logit = self.view_weight(pooled)
            proposal = apply_delta(current, self.head(pooled), cfg.num_betas)
            states.append(replace(self._pose(agree(proposal, torch.softmax(logit, dim=1), inputs.R), inputs), view_logit=logit))
        return states

    def _encode(self, xy: Tensor, conf: Tensor) -> Tensor:
        B, V = xy.shape[:2]
        maps = render_heatmaps(xy, conf, self.cfg.map_size, self.cfg.sigma)
        return self.encoder(maps.reshape(B * V, 17, self.cfg.map_size, self.cfg.map_size)).reshape(B, -1, self.cfg.width)

    def _pose(self, state: Estimate, inputs: ViewInputs) -> Estimate:
        """Fill in the state's joints and its keypoints projected into each view's crop."""
        B, V = state.orient.shape[:2]
        rot = rotation_6d_to_matrix(torch.cat([state.orient[:, :, None], state.pose], dim=2))  # [B, V, 24, 3, 3]
        out = self.body.joints_rotmat(state.betas.reshape(B * V, -1), rot.reshape(B * V, 24, 3, 3))
        assert out.keypoints is not None
        root = 0.5 * (out.keypoints[:, L_HIP] + out.keypoints[:, R_HIP])
        kp = (out.keypoints - root[:, None]).reshape(B, V, 17, 3)
        joints = (out.joints - root[:, None]).reshape(B, V, 24, 3)
        if inputs.K_crop is not None and inputs.root_cam is not None:
            cam = kp + inputs.root_cam[:, :, None]
            uvw = torch.einsum("bvij,bvnj->bvni", inputs.K_crop, cam)
            xy = uvw[..., :2] / uvw[..., 2:3].clamp_min(1e-3)
        else:
            scale = 0.5 * torch.exp(state.cam[..., 0:1, None])
            xy = scale * kp[..., :2] + 0.5 + state.cam[..., None, 1:3]
        return Estimate(state.orient, state.pose, state.betas, state.cam, xy, joints)


def agree(state: Estimate, weights: Tensor, R: Tensor | None) -> Estimate:
    """One body for all views: weighted means (``weights`` ``[B, V, 1]``, summing to 1 over V) of
    pose and betas, and with world-to-camera rotations ``R`` ``[B, V, 3, 3]`` of the
    body-to-world orientation too. Camera parameters stay per view."""
    pose = (weights[..., None] * state.pose).sum(dim=1, keepdim=True).expand_as(state.pose)
    betas = (weights * state.betas).sum(dim=1, keepdim=True).expand_as(state.betas)
    orient = state.orient
    if R is not None:
        world = R.transpose(-1, -2) @ rotation_6d_to_matrix(orient)
        mean = (weights[..., None] * world).sum(dim=1, keepdim=True)
        orient = matrix_to_rotation_6d(R @ rotation_6d_to_matrix(matrix_to_rotation_6d(mean)))
    return Estimate(orient, pose, betas, state.cam)


def zero_linear(n_in: int, n_out: int) -> nn.Linear:
    """A linear layer that starts as zero (adding it to trained weights changes nothing yet)."""
    layer = nn.Linear(n_in, n_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def residual_features(observed: Tensor, estimated: Tensor, seen: Tensor, keypoints: Tensor) -> Tensor:
    """Per view ``[B, V, 85]``: the observed-minus-estimated keypoint offsets (crop units x10,
    zero where a keypoint is missing) and the observed ``keypoints`` ``[B, V, 17, 3]``."""
    B, V = estimated.shape[:2]
    offset = (seen * (observed - estimated) * 10.0).clamp(-5.0, 5.0)
    return torch.cat([offset, keypoints], dim=-1).reshape(B, V, -1)


def flatten(state: Estimate) -> Tensor:
    B, V = state.orient.shape[:2]
    return torch.cat([state.orient, state.pose.reshape(B, V, -1), state.betas, state.cam], dim=-1)


def apply_delta(state: Estimate, delta: Tensor, num_betas: int) -> Estimate:
    B, V = state.orient.shape[:2]
    i = 6 + 23 * 6
    return Estimate(
        orient=state.orient + delta[..., :6],
        pose=state.pose + delta[..., 6:i].reshape(B, V, 23, 6),
        betas=state.betas + delta[..., i : i + num_betas],
        cam=state.cam + delta[..., i + num_betas :],
    )


def sine_code(grid: int, width: int) -> Tensor:
    """2D sine/cosine code ``[grid * grid, width]`` over (row, column) of the patch grid."""
    quarter = width // 4
    freq = torch.exp(-math.log(100.0) * torch.arange(quarter) / quarter)
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32), indexing="ij")
    parts = [torch.sin(rows.reshape(-1, 1) * freq), torch.cos(rows.reshape(-1, 1) * freq)]
    parts += [torch.sin(cols.reshape(-1, 1) * freq), torch.cos(cols.reshape(-1, 1) * freq)]
    return torch.cat(parts, dim=-1)
