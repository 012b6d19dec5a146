"""Solvers against diffusers' schedulers (an independent implementation) on a toy ε-model.

Every comparison runs diffusers' own loop in VP space and ours in EDM σ-space on the same σ grid;
the endpoints (σ = 0, where both spaces coincide) must agree to float precision.
"""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from nowcast.solvers import VPDenoiser, get_solver, make_betas, rollout, vp_sigmas  # noqa: E402

PREDIFF = dict(beta_schedule="scaled_linear", beta_start=1e-4, beta_end=2e-2, num_train_timesteps=1000)


def _alphas_cumprod():
    return torch.cumprod(1 - make_betas("sqrt_linear", 1000, 1e-4, 2e-2), 0)


def _run_diffusers(scheduler, model, x_T):
    x = x_T * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        eps = model(x, t.to(torch.float64).expand(x.shape[0]))
        x = scheduler.step(eps, t, x).prev_sample
    return x


def test_prediff_beta_schedule_matches_diffusers_scaled_linear():
    sched = diffusers.DDPMScheduler(**PREDIFF)
    ac = _alphas_cumprod()
    torch.testing.assert_close(ac.float(), sched.alphas_cumprod, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("steps", [5, 10, 50])
@pytest.mark.parametrize("solver_name", ["euler", "ddim"])
def test_euler_is_ddim(solver_name, steps, toy_eps, x_T):
    sched = diffusers.DDIMScheduler(**PREDIFF, clip_sample=False, set_alpha_to_one=True,
                                    steps_offset=0, timestep_spacing="leading")
    sched.set_timesteps(steps)
    # run diffusers in float64 too, so the comparison is at double precision
    sched.alphas_cumprod = sched.alphas_cumprod.to(torch.float64)
    sched.final_alpha_cumprod = sched.final_alpha_cumprod.to(torch.float64)
    ref = _run_diffusers(sched, toy_eps, x_T)

    ac = sched.alphas_cumprod
    den = VPDenoiser(toy_eps, ac)
    sigmas = vp_sigmas(ac, steps, spacing="leading", final="zero")
    assert torch.equal(torch.as_tensor(sched.timesteps), torch.arange(steps).flip(0) * (1000 // steps))
    x0 = x_T * (1 + sigmas[0] ** 2).sqrt()
    out = rollout(den, x0, sigmas, get_solver(solver_name))
    assert out.nfe == steps
    torch.testing.assert_close(out.x, ref, rtol=1e-9, atol=1e-9)


def _vp_grid_run(sched, toy_eps, x_T, solver):
    ref = _run_diffusers(sched, toy_eps, x_T)
    sigmas = sched.sigmas.to(torch.float64)
    den = VPDenoiser(toy_eps, sched.alphas_cumprod.to(torch.float64))
    x0 = x_T * (1 + sigmas[0] ** 2).sqrt()
    out = rollout(den, x0, sigmas, solver)
    out.x = out.x / (1 + sigmas[-1] ** 2).sqrt()  # back to VP space (no-op at σ = 0)
    return out, ref


@pytest.mark.parametrize("final", ["zero", "sigma_min"])
@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("steps", [4, 6, 10])
def test_dpmpp_matches_diffusers(order, steps, final, toy_eps, x_T):
    sched = diffusers.DPMSolverMultistepScheduler(
        **PREDIFF, algorithm_type="dpmsolver++", solver_order=order, lower_order_final=True,
        final_sigmas_type=final)
    sched.set_timesteps(steps)
    out, ref = _vp_grid_run(sched, toy_eps, x_T, get_solver(f"dpmpp-{order}m"))
    assert out.nfe == steps
    torch.testing.assert_close(out.x, ref, rtol=2e-5, atol=2e-5)


# diffusers' bh1 returns NaN on a final step to σ = 0 (B(h) = −∞ times a zero residual), so the
# grids end at σ_min there, the few-step literature's convention anyway.
@pytest.mark.parametrize("variant,final", [("bh1", "sigma_min"), ("bh2", "sigma_min"), ("bh2", "zero")])
@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("steps", [4, 6, 10])
def test_unipc_matches_diffusers(variant, final, order, steps, toy_eps, x_T):
    sched = diffusers.UniPCMultistepScheduler(
        **PREDIFF, solver_order=order, solver_type=variant, predict_x0=True,
        lower_order_final=True, disable_corrector=[], final_sigmas_type=final)
    sched.set_timesteps(steps)
    out, ref = _vp_grid_run(sched, toy_eps, x_T, get_solver(f"unipc-{variant}", order=order))
    assert out.nfe == steps
    torch.testing.assert_close(out.x, ref, rtol=2e-5, atol=2e-5)
