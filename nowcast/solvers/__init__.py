"""The solver core of nowcast: few-step ODE sampling for diffusion and flow models.

Imports torch (and numpy) only and knows nothing of weather. Every model is adapted to an EDM
σ-space denoiser ``D(x, σ, cond)`` (:mod:`.denoisers`); time grids come from :mod:`.schedules`;
a solver is a step rule over a buffer of past evaluations (:mod:`.singlestep`, :mod:`.multistep`,
:mod:`.dyweight`, :mod:`.spanlift`) run by one loop (:func:`rollout`); learned solvers are trained
by endpoint teacher matching (:mod:`.matching`); :mod:`.span` measures how much of a correction
lies outside the span of the velocity buffer; :mod:`.testbeds` has exact denoisers with known
ODE solutions. ``python -m nowcast.solvers.bench`` runs the solver benchmark.
"""

from .core import CountingDenoiser, Entry, Solver, Step, StepContext
from .denoisers import (CFGDenoiser, Denoiser, EDMPrecond, FlowDenoiser, VPDenoiser, edm_scalings,
                        make_betas)
from .dyweight import DyWeight
from .multistep import IPNDM, DPMSolverPP, UniPC
from .registry import (BASE_SOLVERS, LEARNED_SOLVERS, SOLVERS, get_solver, load_solver, parse_solver_spec,
                       save_solver, solver_from_config, solver_to_config)
from .rollout import RolloutResult, rollout, sample
from .schedules import (edm_sigmas, flow_sigmas, flow_times, get_schedule, logsnr_sigmas,
                        time_uniform_sigmas, vp_sigmas, vp_timesteps)
from .singlestep import DPM2, Euler, Heun
from .spanlift import ResidualOperator, SpanLift

__all__ = [
    "CountingDenoiser", "Entry", "Solver", "Step", "StepContext",
    "CFGDenoiser", "Denoiser", "EDMPrecond", "FlowDenoiser", "VPDenoiser", "edm_scalings",
    "make_betas", "DyWeight", "IPNDM", "DPMSolverPP", "UniPC", "BASE_SOLVERS", "LEARNED_SOLVERS",
    "SOLVERS", "get_solver", "load_solver", "parse_solver_spec", "save_solver", "solver_from_config",
    "solver_to_config", "RolloutResult", "rollout", "sample", "edm_sigmas", "flow_sigmas",
    "flow_times", "get_schedule", "logsnr_sigmas", "time_uniform_sigmas", "vp_sigmas",
    "vp_timesteps", "DPM2", "Euler", "Heun", "ResidualOperator", "SpanLift",
]
