"""nowcast: probabilistic precipitation nowcasting with latent diffusion and few-step solvers.

Subpackages, lowest layer first (each imports only the layers below it):

foundation
    Atomic writes, provenance, device choice, cache directory, registries, task presets.
solvers
    The solver core: denoiser adapters, schedules, base and learned solvers (DyWeight, SpanLift),
    the rollout loop, endpoint teacher matching, span analysis, analytic test beds.
data, io
    SEVIR reading, the codec, the zarr store and windows; event and forecast files.
baselines, models, verification
    Persistence and extrapolation; the VAE, denoiser and latent diffusion model; the scores.
nowcasters, training, viz, imagegen
    The Nowcaster protocol and resolver; the training loop; maps; image generation.
"""

from .foundation.version import __version__

__all__ = ["__version__"]
