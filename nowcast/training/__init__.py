"""Training: the nowcaster's stages and every learned solver, on one loop (``python -m nowcast.train``).

Modules
-------
loop
    The one training loop (with :mod:`.recipe`: Stage, LoopSettings, LRSchedule; :mod:`.distributed`):
    gradient accumulation, bf16 autocast on GPU, DDP under ``torchrun``,
    per-step or carried randomness, the learning-rate schedule, periodic validation (keeping the
    best state where asked), checkpoints, deterministic resume, metrics, progress bar.
config
    :class:`~.config.TrainConfig`, YAML files with per-stage sections, ``key=value`` overrides.
runs
    Run directories (config.json, log.txt, metrics.json, checkpoints, model.pt) and resumption.
stages
    The ``vae``, ``ldm`` and ``align`` stages.
matching
    Endpoint teacher matching of a learned solver (the nowcaster's ``spanlift`` stage, image
    models, analytic test beds).
solver_stage
    The nowcaster's ``spanlift`` stage: teacher pairs, targets, the solver file.
losses, students
    The endpoint losses (``mse``, ``inception``, ``lpips``) and the student builder.
teacher_cache
    Teacher endpoints cached on disk.
"""
