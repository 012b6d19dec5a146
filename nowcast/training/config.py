"""The training configuration: one frozen dataclass, YAML files that override it, flags on top.

A YAML file has shared keys at the top level and a ``stages:`` mapping whose entry for the stage
being trained overrides them (each stage has its own batch size, learning rate and steps)::

    task: sevirlr
    vae: {block_out_channels: [8, 16, 32, 64], latent_channels: 4}
    unet: {base_units: 32}
    stages:
      vae: {batch_size: 16, lr: 1.0e-3, max_steps: 1200}
      ldm: {batch_size: 8, lr: 1.0e-3, max_steps: 2000}

The model sections (``vae``, ``unet``, ``diffusion``, ``alignment``) override the model configs'
defaults (PreDiff's); their frame counts and latent sizes follow from the task and the VAE.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ..foundation.config import DictRoundTrip

__all__ = ["STAGES", "STAGE_DEFAULTS", "TrainConfig", "load_config", "parse_override"]

STAGES = ("spanlift", "vae", "ldm", "align")
_MODEL_SECTIONS = ("vae", "unet", "diffusion", "alignment", "spanlift")
#: Defaults of a stage that differ from the dataclass's (applied under the YAML file).
STAGE_DEFAULTS = {"spanlift": {"batch_size": 4, "lr": 1e-3, "max_steps": 300, "warmup_steps": 30,
                               "lr_schedule": "cosine", "val_every": 50, "ckpt_every": 50}}


@dataclass(frozen=True)
class TrainConfig(DictRoundTrip):
    """Everything a training run needs (defaults: a short CPU run of the paper-shaped model).

    Attributes
    ----------
    stage : str
        ``spanlift`` (a learned few-step solver for a trained nowcaster), ``vae``, ``ldm`` or
        ``align``. :data:`STAGE_DEFAULTS` changes some defaults for ``spanlift``.
    name : str
        Run name (directory ``runs_dir/NNNNN-<name>``); default ``<config stem>-<stage>``.
    runs_dir : str
        Where run directories go.
    task : str
        ``sevirlr`` or ``sevir``.
    data : str or None
        Store path; ``None`` uses (and on first use builds) the cached synthetic store.
    synthetic_events : int
        Size of that synthetic store.
    synthetic_texture : str
        Its storms' small-scale structure: ``radar`` or ``cells`` (the first version, on which the
        models before the radar texture were trained).
    init : str or None
        What the stage starts from: for ``ldm`` the VAE (an exported model file or a ``vae`` run
        directory); for ``align`` the trained nowcaster (file or ``ldm`` run directory).
    warm_start : str or None
        ``ldm``: a trained nowcaster (file or ``ldm`` run directory) whose denoiser (UNet and learned
        log-variance) this run starts from instead of a random initialisation, to train it further
        (a longer schedule, other data). Its UNet and diffusion settings must be the run's, its VAE
        the one of ``init``; its latent scale factor is kept.
    seed : int
        Seed of sampling, noise and initialisation.
    device : str
        ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    precision : str
        ``auto`` (bf16 autocast on CUDA, float32 on CPU), ``bf16`` or ``fp32``.
    batch_size : int
        Samples per process and micro-batch (frames for ``vae``, windows otherwise).
    grad_accum : int
        Micro-batches per optimiser step.
    lr, weight_decay, betas, warmup_steps, lr_schedule, grad_clip :
        AdamW and its schedule (``constant`` or ``cosine`` after a linear warm-up); clip ≤ 0: none.
    max_steps : int
        Optimiser steps of the run.
    ema_decay : float
        EMA of the trained weights (``ldm`` and ``align``); the exported model uses the EMA.
    ckpt_every, keep_checkpoints, log_every : int
        Checkpoint and log periods (steps); checkpoints kept.
    val_every : int
        Validation period (0: only at the end); ``val_windows`` windows of the val split,
        ``val_members`` members, DDIM with ``val_steps`` steps.
    num_workers : int
        DataLoader workers.
    augment : bool
        Random flips and 90° rotations of windows (not with ``latent_cache``).
    latent_cache : bool
        ``ldm``: encode every train frame with the frozen VAE once (posterior mean and std) and
        train from the cache — much faster on CPU; windows then start at every
        ``train_stride``-th frame and are not augmented.
    train_stride : int
        Start-frame stride of training windows in the latent cache (0: the task's stride).
    spanlift : dict
        The ``spanlift`` stage's settings (model, solver, base, teacher, loss, target, …): see
        :class:`nowcast.training.solver_stage.SolverSection`.
    vae, unet, diffusion, alignment : dict
        Overrides of the model configs. ``diffusion.scale_factor: 0`` means "automatic": the
        ``ldm`` stage sets it to 1/std of the VAE's train latents (stored in the exported model).
    """

    stage: str = "spanlift"
    name: str = ""
    runs_dir: str = "runs"
    task: str = "sevirlr"
    data: str | None = None
    synthetic_events: int = 480
    synthetic_texture: str = "radar"
    init: str | None = None
    warm_start: str | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.999)
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    grad_clip: float = 1.0
    max_steps: int = 1000
    ema_decay: float = 0.9999
    ckpt_every: int = 200
    keep_checkpoints: int = 2
    log_every: int = 10
    val_every: int = 0
    val_windows: int = 16
    val_members: int = 2
    val_steps: int = 20
    num_workers: int = 0
    augment: bool = True
    latent_cache: bool = False
    train_stride: int = 0
    vae: dict = field(default_factory=dict)
    unet: dict = field(default_factory=dict)
    diffusion: dict = field(default_factory=dict)
    alignment: dict = field(default_factory=dict)
    spanlift: dict = field(default_factory=dict)

    def __post_init__(self):
        for f in fields(self):             # YAML 1.1 reads 1e-3 (no dot) as a string
            value = getattr(self, f.name)
            if isinstance(f.default, float) and isinstance(value, (str, int)) and not isinstance(value, bool):
                try:
                    object.__setattr__(self, f.name, float(value))
                except ValueError:
                    raise ValueError(f"{f.name} must be a number, got {value!r}") from None
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}; available: {list(STAGES)}")
        for name in ("batch_size", "grad_accum", "max_steps", "ckpt_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.warm_start is not None and self.stage != "ldm":
            raise ValueError(f"warm_start starts an ldm run from a trained denoiser; not for the {self.stage} stage")
        if self.stage == "spanlift":
            from .solver_stage import SolverSection

            # unknown keys and bad values fail here; every field is recorded, defaults included, so
            # that a run is resumed only by the same configuration even after a default changes
            object.__setattr__(self, "spanlift", SolverSection.from_dict(self.spanlift).to_dict())

    def to_json(self) -> str:
        """The resolved configuration as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def loop_settings(self):
        """How :func:`nowcast.training.loop.train` runs this configuration."""
        from .loop import LoopSettings

        return LoopSettings(max_steps=self.max_steps, seed=self.seed, grad_accum=self.grad_accum,
                            grad_clip=self.grad_clip, precision=self.precision, num_workers=self.num_workers,
                            log_every=self.log_every, ckpt_every=self.ckpt_every, val_every=self.val_every,
                            keep_checkpoints=self.keep_checkpoints, name=self.stage, config=self.to_json())

    def schedule(self, start: float = 0.0, final: float = 0.0):
        """The learning-rate schedule: ``warmup_steps`` of linear warm-up, then ``lr_schedule``."""
        from .loop import LRSchedule

        return LRSchedule(self.max_steps, self.warmup_steps, start=start, final=final,
                          cosine=self.lr_schedule == "cosine")


def parse_override(text: str) -> tuple[str, object]:
    """``key=value`` with a YAML value (``lr=3e-4``, ``unet.base_units=64``, ``betas=[0.9,0.99]``)."""
    import yaml

    if "=" not in text:
        raise ValueError(f"override {text!r} is not key=value")
    key, value = text.split("=", 1)
    parsed = yaml.safe_load(value)
    if isinstance(parsed, str):       # YAML 1.1 reads 3e-4 (no dot) as a string
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    return key.strip(), parsed


def load_config(path: str | None = None, stage: str | None = None, overrides=()) -> TrainConfig:
    """Defaults ← YAML top level ← YAML ``stages[stage]`` ← overrides (``(key, value)`` pairs).

    Dotted keys (``unet.base_units``) set one field of a model section.

    Raises
    ------
    ValueError
        For unknown keys (naming the known ones) or bad values.
    FileNotFoundError
        For a missing YAML file.
    """
    import yaml

    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {path} not found")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the top level must be a mapping")
    stages = data.pop("stages", {}) or {}
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"{path}: unknown stages {unknown}; available: {list(STAGES)}")
    stage = stage or data.get("stage", TrainConfig.stage)
    merged = {**STAGE_DEFAULTS.get(stage, {}), **{k: (dict(v) if k in _MODEL_SECTIONS else v) for k, v in data.items()}}
    merged["stage"] = stage
    for key, value in (stages.get(stage) or {}).items():
        if key in _MODEL_SECTIONS:
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    for key, value in overrides:
        if "." in key:
            section, sub = key.split(".", 1)
            if section not in _MODEL_SECTIONS:
                raise ValueError(f"unknown section {section!r} in {key!r}; sections: {list(_MODEL_SECTIONS)}")
            merged[section] = {**merged.get(section, {}), sub: value}
        else:
            merged[key] = value
    if path is not None and not merged.get("name"):
        merged["name"] = f"{Path(path).stem}-{stage}"
    known = {f.name for f in fields(TrainConfig)}
    bad = sorted(set(merged) - known)
    if bad:
        raise ValueError(f"unknown config keys {bad}; known: {sorted(known)}")
    cfg = TrainConfig.from_dict(merged)
    if cfg.name:
        return cfg
    if stage == "spanlift":
        from .solver_stage import default_run_name

        return replace(cfg, name=default_run_name(cfg.spanlift))
    return replace(cfg, name=stage)
