"""The one training loop: every stage (vae, ldm, align), every learned solver (endpoint teacher
matching for the nowcaster, for images and on analytic test beds) and the tiny image model.

A :class:`Stage` says what to train; :func:`train` runs it to ``settings.max_steps`` — or resumes
it from the newest checkpoint of its run directory and continues exactly as if it had never
stopped. One resume format (``checkpoints/step-NNNNNNN.pt``: every module's and optimiser's state,
the step, the elapsed time, the carried generator, the best state kept so far), one learning-rate
schedule (:class:`LRSchedule`), one metrics writer (``metrics.json``: ``train``, ``validation``,
``best``, ``final``).

Randomness. A stage with ``sample`` draws its data in ``DataLoader`` workers from seeds derived
from ``(seed, step, micro-batch, rank)``, and every random draw of step ``s`` (``torch``'s global
generator and the generator handed to ``compute``) is seeded from ``(seed, s, rank)``. A stage
with ``draw`` instead carries one generator through the run (seeded once, saved in every
checkpoint): ``draw(generator)`` makes the batch in this process and ``compute`` continues the
same stream.

Distributed: under ``torchrun`` (``WORLD_SIZE > 1``) each process draws its own samples; after
the micro-batches of a step the gradients of each optimiser are averaged across processes with
one flat all-reduce (gloo on CPU, NCCL on GPU) before clipping and the update. Rank 0 writes
the run directory.
"""

from __future__ import annotations

import copy
import sys
import time
from contextlib import nullcontext
from typing import Callable

import torch

from ..checkpoints import checkpoint_path, latest_checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint
from .distributed import Dist
from .recipe import LoopSettings, LRSchedule, Stage

__all__ = ["LoopSettings", "LRSchedule", "Stage", "Dist", "step_seed", "train"]


def step_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for ``(seed, *keys)`` (numpy's SeedSequence hashing)."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed), *(int(k) for k in keys)]).generate_state(2, np.uint64)[0] >> 1)


class _StepBatches(torch.utils.data.Dataset):
    """Item ``i`` is micro-batch ``i mod accum`` of step ``i // accum`` (built in the workers)."""

    def __init__(self, sample: Callable, accum: int, rank: int, length: int):
        self.sample, self.accum, self.rank, self.length = sample, accum, rank, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        return self.sample(i // self.accum, i % self.accum, self.rank)


class _Run:
    """The state of one run of :func:`train` that is not the stage's: step, clock, generator, best."""

    def __init__(self, settings: LoopSettings, stage: Stage, run, dist: Dist, device):
        self.s, self.stage, self.run, self.dist, self.device = settings, stage, run, dist, device
        self.step, self.elapsed, self.t_seg = 0, 0.0, time.perf_counter()
        self.generator = torch.Generator().manual_seed(settings.seed) if stage.draw is not None else None
        self.step_start_generator = None                  # its state when the current step began
        self.bases = {k: [g["lr"] for g in o.param_groups] for k, o in stage.optimizers.items()}
        self.best = None                                  # (value, step, state) of keep_best
        self.metrics = run.read_metrics() if run is not None else {}
        self.metrics.setdefault("validation", [])
        self.metrics.setdefault("train", [])

    def seconds(self) -> float:
        return self.elapsed + time.perf_counter() - self.t_seg

    def state(self) -> dict:
        st = self.stage
        return {"step": self.step, "elapsed_s": self.seconds(), "world_size": self.dist.world,
                "config": self.s.config, "modules": {k: m.state_dict() for k, m in st.modules.items()},
                "optimizers": {k: o.state_dict() for k, o in st.optimizers.items()},
                "generator": None if self.generator is None else (
                    self.step_start_generator if self.step_start_generator is not None else self.generator.get_state()),
                "best": None if self.best is None else {"value": self.best[0], "step": self.best[1],
                                                        "state": self.best[2]},
                "extra": {k: v.state_dict() for k, v in st.extra_state.items()}}

    def resume(self) -> str | None:
        """Load the newest checkpoint, if any; returns its path."""
        ckpt = self.dist.broadcast(str(latest_checkpoint(self.run.path)) if self.run is not None and
                                   latest_checkpoint(self.run.path) else None)
        if ckpt is None:
            return None
        state = load_checkpoint(ckpt, map_location=self.device)
        for k, m in self.stage.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.stage.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, v in self.stage.extra_state.items():
            if state.get("extra", {}).get(k) is not None:
                v.load_state_dict(state["extra"][k])
        if self.generator is not None and state.get("generator") is not None:
            self.generator.set_state(state["generator"].cpu())
        if state.get("best") is not None:
            b = state["best"]
            self.best = (float(b["value"]), int(b["step"]), b["state"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed_s"])
        if state.get("world_size", 1) != self.dist.world and self.dist.main:
            print(f"warning: resuming a {state['world_size']}-process run with {self.dist.world} processes; "
                  "the continuation will not be bit-identical", file=sys.stderr)
        if self.run is not None:
            self.run.log(f"resumed from {ckpt} at step {self.step}")
        return ckpt

    def checkpoint(self, meta: dict | None) -> None:
        if self.run is None:
            return
        save_checkpoint(self.state(), checkpoint_path(self.run.path, self.step))
        prune_checkpoints(self.run.path, self.s.keep_checkpoints)
        if self.stage.export is not None:
            self.stage.export(self.run.model, {**(meta or {}), "steps": self.step, "wall_time_s": self.seconds()})

    def validate(self) -> None:
        st = self.stage
        if st.validate is None or (self.run is None and not st.keep_best):     # rank 0 validates
            return
        entry = {"step": self.step, **st.validate(self.step)}
        if self.run is not None or st.keep_best:
            self.metrics["validation"].append(entry)
        if self.run is not None:
            self.run.log(f"validation {entry}")
        if st.keep_best and (self.best is None or entry[st.keep_best] < self.best[0]):
            self.best = (float(entry[st.keep_best]), self.step,
                         copy.deepcopy({k: m.state_dict() for k, m in st.modules.items()}))

    def restore_best(self) -> None:
        if self.stage.keep_best and self.best is not None:
            for k, m in self.stage.modules.items():
                m.load_state_dict(self.best[2][k])
            self.metrics["best"] = {"step": self.best[1], self.stage.keep_best: self.best[0]}


def _batches(settings: LoopSettings, stage: Stage, run: _Run):
    """The micro-batches from the run's step on: a ``DataLoader`` over ``sample``, or ``draw``."""
    if stage.draw is not None:
        return (None for _ in range(run.step, settings.max_steps))
    return torch.utils.data.DataLoader(
        _StepBatches(stage.sample, settings.grad_accum, run.dist.rank, settings.max_steps * settings.grad_accum),
        sampler=range(run.step * settings.grad_accum, settings.max_steps * settings.grad_accum), batch_size=None,
        num_workers=settings.num_workers, persistent_workers=False)


def _optimizer_step(settings: LoopSettings, stage: Stage, dist: Dist) -> None:
    for name, o in stage.optimizers.items():
        dist.average_gradients(stage.params[name])
        if settings.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(stage.params[name], settings.grad_clip)
        o.step()
        o.zero_grad(set_to_none=True)
    if stage.after_step is not None:
        stage.after_step()


def _set_lr(stage: Stage, r: _Run) -> float:
    """Each group's rate for step ``r.step`` from the rate it was built with; returns the first."""
    for name, o in stage.optimizers.items():
        for group, base in zip(o.param_groups, r.bases[name]):
            if stage.lr is not None:
                group["lr"] = stage.lr(r.step, base)
    return next(iter(stage.optimizers.values())).param_groups[0]["lr"]


def _step_generator(settings: LoopSettings, run: _Run) -> torch.Generator:
    if run.generator is not None:
        run.step_start_generator = run.generator.get_state()
        return run.generator
    seed = step_seed(settings.seed, run.step, run.dist.rank)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def train(settings: LoopSettings, stage: Stage, run=None, dist: Dist | None = None, device=None, *,
          progress: bool = True, meta: dict | None = None, on_step: Callable[[int], None] | None = None) -> dict:
    """Run (or resume) ``stage`` to ``settings.max_steps``; returns the metrics.

    Parameters
    ----------
    settings : LoopSettings
    stage : Stage
    run : nowcast.training.runs.RunDir, optional
        The run directory (``None``: nothing is written, e.g. on ranks other than 0).
    dist : Dist, optional
        Process group (default: one process).
    device : torch.device, optional
        Where batches go (default: CPU).
    progress : bool
        Progress bar on rank 0.
    meta : dict, optional
        Provenance stored in the exported model.
    on_step : callable, optional
        Called with the step number after each completed step (tests use it to simulate a kill).

    Returns
    -------
    dict
        ``train`` (periodic means of the logged values), ``validation`` (one entry per
        validation), ``best`` (with ``keep_best``) and ``final`` (step and wall time).
    """
    dist, device = dist or Dist(), torch.device(device or "cpu")
    for name, params in stage.params.items():
        if name not in stage.optimizers:
            stage.optimizers[name] = stage.optimizer(params)
    r = _Run(settings, stage, run, dist, device)
    ckpt = r.resume()
    start = r.step
    if ckpt is None and stage.validate_at_start:
        r.validate()
    amp = settings.precision == "bf16" or (settings.precision == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else nullcontext
    bar = None
    if progress and dist.main:
        from tqdm.auto import tqdm
        bar = tqdm(total=settings.max_steps, initial=start, desc=f"train {settings.name}", unit="step",
                   dynamic_ncols=True)
    r.t_seg = time.perf_counter()
    try:
        _loop(settings, stage, r, _batches(settings, stage, r), autocast, bar, meta, on_step)
    except KeyboardInterrupt:
        if r.step > start and r.run is not None:
            r.checkpoint(meta)
            r.run.log(f"interrupted: checkpoint at step {r.step}")
        raise
    finally:
        if bar is not None:
            bar.close()
    return _finish(settings, stage, r, start, ckpt, meta)


def _loop(settings, stage, r: _Run, batches, autocast, bar, meta, on_step) -> None:
    micro, sums, t_last, n_last = 0, {}, time.perf_counter(), 0
    history = r.metrics["train"]
    for batch in batches:
        if micro == 0:
            generator = _step_generator(settings, r)
            lr = _set_lr(stage, r)
        if stage.draw is not None:
            batch = stage.draw(generator)
        batch = _to(batch, r.device)
        with autocast():
            losses, logs = stage.compute(batch, r.step, generator)
        for name, loss in losses.items():
            (loss / settings.grad_accum).backward(inputs=stage.params[name])
        for k, v in logs.items():
            sums[k] = sums.get(k, 0.0) + float(v) / settings.grad_accum
        micro += 1
        if micro < settings.grad_accum:
            continue
        micro = 0
        _optimizer_step(settings, stage, r.dist)
        r.step += 1
        r.step_start_generator = None
        n_last += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v / n_last:.4g}" for k, v in sums.items() if k in ("loss", "rec")})
        if r.step % settings.log_every == 0 or r.step == settings.max_steps:
            now = time.perf_counter()
            entry = {"step": r.step, "lr": lr, "s_per_step": (now - t_last) / n_last,
                     **{k: v / n_last for k, v in sums.items()}}
            if r.run is not None:
                history.append(entry)
                r.run.log(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items()))
            sums, t_last, n_last = {}, now, 0
        if settings.val_every and r.step % settings.val_every == 0 and r.step != settings.max_steps:
            r.validate()
            r.dist.barrier()
        if r.step % settings.ckpt_every == 0 and r.step != settings.max_steps:
            r.checkpoint(meta)
        if r.run is not None and (r.step % settings.log_every == 0 or r.step % settings.ckpt_every == 0):
            r.run.write_metrics(r.metrics)
        if on_step is not None:
            on_step(r.step)


def _finish(settings, stage, r: _Run, start: int, ckpt, meta) -> dict:
    if r.step > start or ckpt is None:
        r.validate()
        r.restore_best()
        r.checkpoint(meta)
    r.elapsed = r.seconds()
    r.metrics["final"] = {"step": r.step, "wall_time_s": r.elapsed,
                          **(r.metrics["validation"][-1] if r.metrics["validation"] else {})}
    if r.run is not None:
        r.run.write_metrics(r.metrics)
        r.run.log(f"done: {r.step} steps, {r.elapsed:.1f} s of training")
    r.dist.barrier()
    return r.metrics


def _to(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch
