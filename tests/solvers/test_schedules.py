"""σ grids against published values and diffusers' schedulers."""

import pytest
import torch

from nowcast.solvers import (edm_sigmas, flow_times, get_schedule, logsnr_sigmas,
                             time_uniform_sigmas, vp_timesteps)


def test_edm_grid_values():
    # Karras et al. (2022), ρ = 7, σ ∈ [0.002, 80]: published 5-point grid
    torch.testing.assert_close(edm_sigmas(4), torch.tensor([80, 17.5278, 2.5152, 0.1698, 0.002],
                                                           dtype=torch.float64), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(edm_sigmas(3), torch.tensor([80, 9.723, 0.470, 0.002], dtype=torch.float64),
                               rtol=1e-3, atol=1e-3)


def test_logsnr_and_time_uniform_values():
    torch.testing.assert_close(logsnr_sigmas(4), torch.tensor([80, 5.657, 0.400, 0.0283, 0.002],
                                                              dtype=torch.float64), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(time_uniform_sigmas(4), torch.tensor([80, 11.73, 2.824, 0.857, 0.002],
                                                                    dtype=torch.float64), rtol=2e-3, atol=1e-4)


def test_edm_grid_matches_diffusers_karras():
    diffusers = pytest.importorskip("diffusers")
    s = diffusers.EDMEulerScheduler(sigma_min=0.002, sigma_max=80.0, rho=7.0, final_sigmas_type="zero")
    s.set_timesteps(7)
    torch.testing.assert_close(edm_sigmas(6, append_zero=True).float(), s.sigmas, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [5, 7, 20])
def test_vp_timesteps_match_diffusers(spacing, steps):
    diffusers = pytest.importorskip("diffusers")
    s = diffusers.DDIMScheduler(timestep_spacing=spacing, steps_offset=0)
    s.set_timesteps(steps)
    assert torch.equal(vp_timesteps(steps, 1000, spacing), torch.as_tensor(s.timesteps, dtype=torch.int64))


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flow_times_match_diffusers(shift):
    diffusers = pytest.importorskip("diffusers")
    s = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    s.set_timesteps(sigmas=torch.linspace(1, 1 / 6, 6).tolist())  # what the SD3/FLUX pipelines pass
    torch.testing.assert_close(flow_times(6, shift=shift).float(), s.sigmas, rtol=1e-6, atol=1e-6)


def test_schedule_errors():
    with pytest.raises(ValueError, match="available"):
        get_schedule("karras2")
    with pytest.raises(ValueError, match="positive integer"):
        edm_sigmas(0)
    with pytest.raises(ValueError, match="spacing"):
        vp_timesteps(5, spacing="sideways")
