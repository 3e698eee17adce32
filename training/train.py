"""Train HeatFormer-S on synthetic multi-view heatmaps, for a fixed wall-clock budget.

    python -m training.train --config configs/heatformer_s.toml --device auto --minutes 60 \
        [--resume out/train/last.pt] [--out out/train] [--body-model FILE]

Data are generated on the fly on the training device. The learning rate follows a cosine from
``lr`` down to ``lr_final`` x ``lr`` over the run's ``--minutes``. Every ``checkpoint_minutes`` and at the end
the run writes ``last.pt`` (model, optimizer, step, config: resumable), appends to ``log.csv`` and
redraws ``loss.png``. ``--export FILE`` also writes the final weights for the app.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from core.errors import AppError
from core.paths import CONFIGS_DIR
from engine.body import BodyModel
from engine.heatformer.inputs import prepare, triangulate_root
from engine.heatformer.model import HeatFormer, HeatFormerConfig
from training.losses import LossWeights, loss, targets
from training.synth.scene import PoseBank, sample_scene


@dataclass(frozen=True)
class TrainConfig:
    batch: int = 32
    lr: float = 3e-4
    lr_final: float = 0.1  # the learning rate falls (cosine) to this fraction of lr by the run's end
    weight_decay: float = 1e-4
    min_views: int = 1
    max_views: int = 8
    single_view_fraction: float = 0.0  # extra share of batches with one view, on top of the uniform draw
    single_view_batch: int = 0  # samples in a one-view batch (0: batch); one view costs a fraction of eight
    calibrated_fraction: float = 0.5
    recorded_fraction: float = 0.0  # share of bodies posed from the retargeted CMU clips
    augment_recorded: bool = False  # mirror, mix legs of and jitter the recorded poses (PoseBank.sample)
    mix_limbs: bool = False  # with augment_recorded: mix each arm and leg alone, not both legs together
    wide_limbs: float = 0.0  # share of bodies given wide arm and leg poses (training.synth.poses.widen_limbs)
    arm_gestures: float = 0.0  # share of bodies given an everyday arm gesture (training.synth.poses.everyday_arms)
    balance: float = 0.0  # share of standing, walking and reaching bodies on one leg (training.synth.poses.one_leg_balance)
    local_joints: float = 0.0  # weight of the joint loss in the body's own frame (LossWeights.local_joints)
    pa_joints: float = 0.0  # weight of the Procrustes-aligned joint loss (LossWeights.pa_joints)
    seed: int = 1
    checkpoint_minutes: float = 5.0
    log_every: int = 25


def load_config(path: Path) -> tuple[HeatFormerConfig, TrainConfig]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AppError(f"training config {path}: cannot read ({exc})") from exc
    return _section(path, data, "model", HeatFormerConfig), _section(path, data, "train", TrainConfig)


def _section(path: Path, data: dict, name: str, cls: type):
    table = data.get(name, {})
    known = {f.name for f in fields(cls)}
    unknown = set(table) - known
    if unknown:
        raise AppError(f"training config {path}: unknown field(s) in [{name}]: {', '.join(sorted(unknown))}")
    return cls(**table)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AppError("--device cuda: no CUDA device available")
    return torch.device(name)


def draw_views(cfg: TrainConfig, g: torch.Generator) -> int:
    """A batch's view count: uniform over min..max views, or one with ``single_view_fraction`` odds."""
    views = int(torch.randint(cfg.min_views, cfg.max_views + 1, (1,), generator=g))
    if cfg.single_view_fraction > 0 and float(torch.rand(1, generator=g)) < cfg.single_view_fraction:
        views = 1
    return views


def batch_size(cfg: TrainConfig, views: int) -> int:
    """Samples in a batch of ``views`` views: ``single_view_batch`` for one view when set, else ``batch``."""
    return cfg.single_view_batch if views == 1 and cfg.single_view_batch > 0 else cfg.batch


def step_batch(
    model: HeatFormer, cfg: TrainConfig, g: torch.Generator, bank: PoseBank | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    views = draw_views(cfg, g)
    scene = sample_scene(model.body, batch_size(cfg, views), views, g, bank=bank, bank_fraction=cfg.recorded_fraction,
                         augment_bank=cfg.augment_recorded, wide_limbs=cfg.wide_limbs, mix_limbs=cfg.mix_limbs,
                         arm_gestures=cfg.arm_gestures, balance=cfg.balance)  # fmt: skip
    calibrated = views >= 2 and float(torch.rand(1, generator=g)) < cfg.calibrated_fraction
    if calibrated:
        root, ok = triangulate_root(scene.observed, scene.K, scene.R, scene.t)
        truth = 0.5 * (scene.keypoints3d[:, 11] + scene.keypoints3d[:, 12])
        root = torch.where(ok[:, None], root, truth + 0.03 * torch.randn(truth.shape, generator=g))
        inputs = prepare(scene.observed, scene.K, scene.R, scene.t, root)
    else:
        inputs = prepare(scene.observed)
    weights = LossWeights(local_joints=cfg.local_joints, pa_joints=cfg.pa_joints)
    total, parts = loss(model(inputs), targets(scene, inputs), weights)
    parts.update(views=views, calibrated=int(calibrated))
    return total, parts


def train(args: argparse.Namespace) -> Path:
    model_cfg, cfg = load_config(args.config)
    device = pick_device(args.device)
    torch.set_default_device(device)
    body = BodyModel.from_file(args.body_model).to(device)
    model = HeatFormer(body, model_cfg).to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, elapsed = 0, 0.0
    if args.resume:
        ckpt = torch.load(args.resume, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"], strict=False)
        if "optimizer" in ckpt:  # a training checkpoint (last.pt)
            optimizer.load_state_dict(ckpt["optimizer"])
            step, elapsed = ckpt["step"], ckpt.get("elapsed_s", 0.0)
        else:  # exported weights (e.g. assets/models/heatformer_s.pt): a fresh optimizer
            step, elapsed = ckpt["meta"]["step"], float(ckpt["meta"]["train_seconds"])
        print(f"resumed {args.resume} at step {step}", flush=True)
    g = torch.Generator(device=device).manual_seed(cfg.seed + step)
    bank = PoseBank.load() if cfg.recorded_fraction > 0 else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.csv"
    start, last_ckpt = time.perf_counter(), time.perf_counter()
    budget = args.minutes * 60.0
    running: dict[str, float] = {}
    counted = 0  # steps summed in running (fewer than log_every right after a resume)
    model.train()
    while time.perf_counter() - start < budget:
        progress = (time.perf_counter() - start) / budget
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * progress)))
        total, parts = step_batch(model, cfg, g, bank)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        for k, v in parts.items():
            running[k] = running.get(k, 0.0) + float(v)
        counted += 1
        if step % cfg.log_every == 0:
            spent = time.perf_counter() - start
            row = {k: v / counted for k, v in running.items()} | {"step": step, "elapsed_s": elapsed + spent}
            append_csv(log_path, row)
            running, counted = {}, 0
            last = model.cfg.iterations
            print(f"\rstep {step}  {spent / 60:5.1f}/{args.minutes:.0f} min  loss {row['loss']:.4f}  "
                  f"joints {row[f'mpjpe_mm_{last}']:.0f} mm", end="", flush=True)  # fmt: skip
        if time.perf_counter() - last_ckpt > cfg.checkpoint_minutes * 60:
            save(out / "last.pt", model, optimizer, step, elapsed + time.perf_counter() - start, model_cfg, cfg)
            plot(log_path, out / "loss.png")
            last_ckpt = time.perf_counter()
    print(flush=True)
    path = save(out / "last.pt", model, optimizer, step, elapsed + time.perf_counter() - start, model_cfg, cfg)
    plot(log_path, out / "loss.png")
    if args.export:
        export(args.export, model, step, elapsed + time.perf_counter() - start, model_cfg, device)
    return path


def save(path: Path, model: HeatFormer, optimizer: torch.optim.Optimizer, step: int, elapsed: float,
         model_cfg: HeatFormerConfig, cfg: TrainConfig) -> Path:  # fmt: skip
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("body.")}
    tmp = path.with_suffix(".tmp")
    torch.save({"model": state, "optimizer": optimizer.state_dict(), "step": step, "elapsed_s": elapsed,
                "model_config": asdict(model_cfg), "train_config": asdict(cfg)}, tmp)  # fmt: skip
    tmp.replace(path)  # never leave a half-written checkpoint
    return path


def export(path: Path, model: HeatFormer, step: int, elapsed: float, model_cfg: HeatFormerConfig, device: torch.device) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith("body.")}
    meta = {"step": step, "train_seconds": round(elapsed), "device": str(device)}
    torch.save({"format_version": 1, "model": state, "model_config": asdict(model_cfg), "meta": meta}, path)
    print(f"exported {path}")


def append_csv(path: Path, row: dict[str, float]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sorted(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def plot(log_path: Path, out: Path) -> None:
    """Loss and joint error per iteration against training time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not log_path.exists():
        return
    with log_path.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    steps = [float(r["step"]) for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(steps, [float(r["loss"]) for r in rows])
    a.set(xlabel="step", ylabel="loss", yscale="log", title="training loss")
    for key in sorted(k for k in rows[0] if k.startswith("mpjpe_mm_")):
        b.plot(steps, [float(r[key]) for r in rows], label=f"iteration {key.rsplit('_', 1)[1]}")
    b.set(xlabel="step", ylabel="mm", yscale="log", title="root-relative joint error (training batches)")
    b.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=CONFIGS_DIR / "heatformer_s.toml")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock training budget")
    parser.add_argument("--resume", type=Path, help="checkpoint to continue from (last.pt)")
    parser.add_argument("--out", type=Path, default=Path("out/train"))
    parser.add_argument("--export", type=Path, help="also write the final weights here (e.g. assets/models/heatformer_s.pt)")
    parser.add_argument("--body-model", type=Path)
    args = parser.parse_args(argv)
    try:
        train(args)
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
