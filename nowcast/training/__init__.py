"""Training of the nowcaster (``python -m nowcast.train``).

Modules
-------
config
    :class:`~.config.TrainConfig`, YAML files with per-stage sections, ``key=value`` overrides.
runs
    Run directories (config.json, log.txt, metrics.json, checkpoints, model.pt) and resumption.
engine
    The step loop shared by every stage: gradient accumulation, bf16 autocast on GPU, DDP under
    ``torchrun``, periodic checkpoints, deterministic resume, progress bar.
stages
    The ``vae``, ``ldm`` and ``align`` stages.
"""
