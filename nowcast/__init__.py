"""nowcast: probabilistic precipitation nowcasting with latent diffusion and few-step solvers.

Subpackages
-----------
solvers
    The solver core: denoiser adapters, schedules, base solvers, learned solvers (DyWeight,
    SpanLift), the rollout loop, endpoint teacher matching, span analysis and analytic test beds.
"""

__version__ = "0.1.0"
