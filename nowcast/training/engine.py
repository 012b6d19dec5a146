"""The training loop shared by every stage: steps, accumulation, DDP, autocast, checkpoints, resume.

Determinism: the data of step ``s`` (micro-batch ``k``, rank ``r``) and all random draws of that
step (timesteps, noise, posterior samples, dropout) come from seeds derived from ``(seed, s, k, r)``,
so a run resumed from the checkpoint of step ``s`` continues exactly as if it had never stopped:
the checkpoint holds every module's state and every optimiser's state, and nothing else is
carried between steps.

Distributed: under ``torchrun`` (``WORLD_SIZE > 1``) each process draws its own samples; after
the micro-batches of a step the gradients of each optimiser are averaged across processes with
one flat all-reduce (gloo on CPU, NCCL on GPU) before clipping and the update. Rank 0 writes
the run directory.
"""

from __future__ import annotations

import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..checkpoints import checkpoint_path, latest_checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint
from .config import TrainConfig
from .runs import RunDir

__all__ = ["Stage", "Dist", "step_seed", "train"]


def step_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for ``(seed, *keys)`` (numpy's SeedSequence hashing)."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed), *(int(k) for k in keys)]).generate_state(2, np.uint64)[0] >> 1)


@dataclass
class Dist:
    """Process group facts (a single process when not launched by ``torchrun``)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, device_type: str) -> "Dist":
        """Join the process group ``torchrun`` describes in the environment, if any."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        """Rank 0."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process."""
        if self.world > 1:
            torch.distributed.barrier()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def average_gradients(self, params: list) -> None:
        """Average ``.grad`` of ``params`` over processes (missing gradients count as zero)."""
        if self.world == 1 or not params:
            return
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = _flatten_dense_tensors(grads)
        torch.distributed.all_reduce(flat)
        flat /= self.world
        for p, g in zip(params, _unflatten_dense_tensors(flat, grads)):
            p.grad = g.clone() if p.grad is None else p.grad.copy_(g)


@dataclass
class Stage:
    """What a training stage supplies to :func:`train`.

    Attributes
    ----------
    modules : dict of str to nn.Module
        Everything whose state is checkpointed (trained networks, EMA, discriminator).
    params : dict of str to list
        Trained parameters per optimiser name.
    sample : callable
        ``sample(step, micro, rank) → batch`` — deterministic in its arguments (runs in DataLoader
        workers).
    compute : callable
        ``compute(batch, step, generator) → (losses, logs)``: ``losses`` maps optimiser names to
        scalar losses (each backpropagated into its own parameters only), ``logs`` scalar floats.
    validate : callable, optional
        ``validate(step) → dict`` of metrics (rank 0).
    export : callable
        ``export(path, meta)`` writes the usable model (``model.pt``).
    after_step : callable, optional
        Called after each optimiser step (EMA updates).
    optimizer : callable
        ``optimizer(params) → torch.optim.Optimizer`` for each name in ``params``.
    """

    modules: dict
    params: dict
    sample: Callable
    compute: Callable
    export: Callable
    validate: Callable | None = None
    after_step: Callable | None = None
    optimizer: Callable | None = None
    optimizers: dict = field(default_factory=dict)


class _StepBatches(torch.utils.data.Dataset):
    """Item ``i`` is micro-batch ``i mod accum`` of step ``i // accum`` (built in the workers)."""

    def __init__(self, sample: Callable, accum: int, rank: int, length: int):
        self.sample, self.accum, self.rank, self.length = sample, accum, rank, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        return self.sample(i // self.accum, i % self.accum, self.rank)


def _lr(cfg: TrainConfig, step: int) -> float:
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "cosine":
        span = max(1, cfg.max_steps - cfg.warmup_steps)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - cfg.warmup_steps) / span)))
    return cfg.lr


def _state(stage: Stage, step: int, elapsed: float, dist: Dist, cfg: TrainConfig) -> dict:
    return {"step": step, "elapsed_s": elapsed, "world_size": dist.world, "config": cfg.to_json(),
            "modules": {k: m.state_dict() for k, m in stage.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in stage.optimizers.items()}}


def train(cfg: TrainConfig, stage: Stage, run: RunDir | None, dist: Dist, device: torch.device, *,
          progress: bool = True, meta: dict | None = None,
          on_step: Callable[[int], None] | None = None) -> dict:
    """Run (or resume) the stage to ``cfg.max_steps``; returns the final metrics.

    Parameters
    ----------
    cfg : TrainConfig
    stage : Stage
    run : RunDir or None
        The run directory (``None`` on ranks other than 0).
    dist : Dist
    device : torch.device
    progress : bool
        Progress bar on rank 0.
    meta : dict, optional
        Provenance stored in the exported model.
    on_step : callable, optional
        Called with the step number after each completed step (tests use it to simulate a kill).
    """
    for name, params in stage.params.items():
        stage.optimizers[name] = stage.optimizer(params)
    start, elapsed = 0, 0.0
    ckpt = dist.broadcast(str(latest_checkpoint(run.path)) if run is not None and latest_checkpoint(run.path)
                          else None)
    if ckpt is not None:
        state = load_checkpoint(ckpt, map_location=device)
        for k, m in stage.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in stage.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        start, elapsed = int(state["step"]), float(state["elapsed_s"])
        if state.get("world_size", 1) != dist.world and dist.main:
            print(f"warning: resuming a {state['world_size']}-process run with {dist.world} processes; "
                  "the continuation will not be bit-identical", file=sys.stderr)
        if run is not None:
            run.log(f"resumed from {ckpt} at step {start}")
    amp = (cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda"))
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else nullcontext
    loader = torch.utils.data.DataLoader(
        _StepBatches(stage.sample, cfg.grad_accum, dist.rank, cfg.max_steps * cfg.grad_accum),
        sampler=range(start * cfg.grad_accum, cfg.max_steps * cfg.grad_accum), batch_size=None,
        num_workers=cfg.num_workers, persistent_workers=False)
    bar = None
    if progress and dist.main:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.max_steps, initial=start, desc=f"train {cfg.stage}", unit="step", dynamic_ncols=True)
    metrics = run.read_metrics() if run is not None else {}
    metrics.setdefault("validation", [])
    history = metrics.setdefault("train", [])
    step, micro, sums, t_last, n_last = start, 0, {}, time.perf_counter(), 0
    t_seg = time.perf_counter()

    def checkpoint(at: int) -> None:
        if run is None:
            return
        save_checkpoint(_state(stage, at, elapsed + time.perf_counter() - t_seg, dist, cfg),
                        checkpoint_path(run.path, at))
        prune_checkpoints(run.path, cfg.keep_checkpoints)
        stage.export(run.model, {**(meta or {}), "steps": at, "wall_time_s": elapsed + time.perf_counter() - t_seg})

    try:
        for batch in loader:
            if micro == 0:
                seed = step_seed(cfg.seed, step, dist.rank)
                torch.manual_seed(seed)
                generator = torch.Generator().manual_seed(seed)
                lr = _lr(cfg, step)
                for o in stage.optimizers.values():
                    for group in o.param_groups:
                        group["lr"] = lr
            batch = _to(batch, device)
            with autocast():
                losses, logs = stage.compute(batch, step, generator)
            for name, loss in losses.items():
                (loss / cfg.grad_accum).backward(inputs=stage.params[name])
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v) / cfg.grad_accum
            micro += 1
            if micro < cfg.grad_accum:
                continue
            micro = 0
            for name, o in stage.optimizers.items():
                dist.average_gradients(stage.params[name])
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(stage.params[name], cfg.grad_clip)
                o.step()
                o.zero_grad(set_to_none=True)
            if stage.after_step is not None:
                stage.after_step()
            step += 1
            n_last += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v / n_last:.4g}" for k, v in sums.items() if k in ("loss", "rec")})
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                now = time.perf_counter()
                entry = {"step": step, "lr": lr, "s_per_step": (now - t_last) / n_last,
                         **{k: v / n_last for k, v in sums.items()}}
                if run is not None:
                    history.append(entry)
                    run.log(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items()))
                sums, t_last, n_last = {}, now, 0
            if step % cfg.ckpt_every == 0 and step != cfg.max_steps:
                checkpoint(step)
            if cfg.val_every and step % cfg.val_every == 0 and step != cfg.max_steps and stage.validate:
                if run is not None:
                    metrics["validation"].append({"step": step, **stage.validate(step)})
                    run.log(f"validation {metrics['validation'][-1]}")
                dist.barrier()
            if run is not None and (step % cfg.log_every == 0 or step % cfg.ckpt_every == 0):
                run.write_metrics(metrics)
            if on_step is not None:
                on_step(step)
    except KeyboardInterrupt:
        if micro == 0 and step > start:
            checkpoint(step)
            if run is not None:
                run.log(f"interrupted: checkpoint at step {step}")
        raise
    finally:
        if bar is not None:
            bar.close()
    if step > start or ckpt is None:
        checkpoint(step)
    elapsed += time.perf_counter() - t_seg
    if run is not None and stage.validate is not None:
        metrics["validation"].append({"step": step, **stage.validate(step)})
        run.log(f"validation {metrics['validation'][-1]}")
    if run is not None:
        metrics["final"] = {"step": step, "wall_time_s": elapsed,
                            **(metrics["validation"][-1] if metrics["validation"] else {})}
        run.write_metrics(metrics)
        run.log(f"done: {step} steps, {elapsed:.1f} s of training")
    dist.barrier()
    return metrics


def _to(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch
