"""SANA and FLUX through the solver core reproduce diffusers' own pipelines (tiny random models)."""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from nowcast.imagegen.flow import (FluxPrompt, FluxVelocity, SanaPrompt, SanaVelocity, decode_flux,  # noqa: E402
                                   decode_sana, flux_grid, pack_latents, sample_flow, sana_grid,
                                   unpack_latents)
from nowcast.solvers import get_solver  # noqa: E402


def _sana_components():
    torch.manual_seed(0)
    transformer = diffusers.SanaTransformer2DModel(
        patch_size=1, in_channels=4, out_channels=4, num_layers=1, num_attention_heads=2, attention_head_dim=4,
        num_cross_attention_heads=2, cross_attention_head_dim=4, cross_attention_dim=8, caption_channels=8,
        sample_size=32).eval()
    vae = diffusers.AutoencoderDC(
        in_channels=3, latent_channels=4, attention_head_dim=2,
        encoder_block_types=("ResBlock", "EfficientViTBlock"), decoder_block_types=("ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
        encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1), decoder_layers_per_block=[1, 1],
        downsample_block_type="conv", upsample_block_type="interpolate", decoder_norm_types="rms_norm",
        decoder_act_fns="silu", scaling_factor=0.41407).eval()
    return transformer, vae


def _sana_prompt(batch=2, length=6):
    g = torch.Generator().manual_seed(1)
    return SanaPrompt(torch.randn(batch, length, 8, generator=g), torch.ones(batch, length, dtype=torch.long),
                      torch.randn(batch, length, 8, generator=g), torch.ones(batch, length, dtype=torch.long))


def _sana_pipe(scheduler):
    transformer, vae = _sana_components()
    return diffusers.SanaPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=transformer,
                                  scheduler=scheduler)


def _run_sana_pipeline(pipe, prompt, latents, steps, guidance, output_type="latent"):
    return pipe(prompt_embeds=prompt.embeds, prompt_attention_mask=prompt.mask,
                negative_prompt_embeds=prompt.negative_embeds, negative_prompt_attention_mask=prompt.negative_mask,
                negative_prompt=None, latents=latents.clone(), num_inference_steps=steps, guidance_scale=guidance,
                height=latents.shape[-2] * pipe.vae_scale_factor, width=latents.shape[-1] * pipe.vae_scale_factor,
                output_type=output_type, use_resolution_binning=False, return_dict=False)[0]


SANA_SCHEDULER = dict(algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
                      prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0,
                      final_sigmas_type="zero", lower_order_final=True, timestep_spacing="linspace",
                      num_train_timesteps=1000)


@pytest.mark.parametrize("steps,guidance", [(8, 4.5), (5, 1.0), (20, 4.5)])
def test_sana_dpm_solver_loop_reproduces_the_pipeline(steps, guidance):
    pipe = _sana_pipe(diffusers.DPMSolverMultistepScheduler(**SANA_SCHEDULER))
    prompt = _sana_prompt()
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = _run_sana_pipeline(pipe, prompt, latents, steps, guidance)
        ours, nfe = sample_flow(SanaVelocity(pipe.transformer, guidance), latents, sana_grid(steps, shift=3.0),
                                get_solver("dpmpp-2m"), prompt, return_nfe=True)
    assert nfe == steps
    torch.testing.assert_close(ours, want, rtol=0, atol=1e-5)
    assert (ours - latents).abs().max() > 0.1                      # the loop did move the latents


def test_sana_integer_timesteps_matter():
    # the stock scheduler passes int(σ·1000); continuous time gives measurably different latents
    pipe = _sana_pipe(diffusers.DPMSolverMultistepScheduler(**SANA_SCHEDULER))
    prompt = _sana_prompt()
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = _run_sana_pipeline(pipe, prompt, latents, 8, 4.5)
        cont = sample_flow(SanaVelocity(pipe.transformer, 4.5), latents, sana_grid(8), get_solver("dpmpp-2m"),
                           prompt, pipeline_timesteps=False)
    assert (cont - want).abs().max() > 1e-4


def test_sana_euler_reproduces_flow_match_euler_and_decodes_like_the_pipeline():
    pipe = _sana_pipe(diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0))
    prompt = _sana_prompt()
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    steps = 6
    pipe.scheduler.set_timesteps(steps)
    grid_t = torch.cat([pipe.scheduler.sigmas[:-1].double(), torch.zeros(1, dtype=torch.float64)])
    from nowcast.imagegen.flow import FlowGrid

    grid = FlowGrid(grid_t, pipe.scheduler.timesteps.double())
    with torch.no_grad():
        want = _run_sana_pipeline(pipe, prompt, latents, steps, 4.5)
        ours = sample_flow(SanaVelocity(pipe.transformer, 4.5), latents, grid, get_solver("euler"), prompt)
        torch.testing.assert_close(ours, want, rtol=0, atol=1e-5)
        img = _run_sana_pipeline(pipe, prompt, latents, steps, 4.5, output_type="pt")
        torch.testing.assert_close(decode_sana(pipe.vae, ours), img, rtol=0, atol=1e-5)


def _flux_pipe():
    torch.manual_seed(0)
    transformer = diffusers.FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
        guidance_embeds=True).eval()
    vae = diffusers.AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
        latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.0609, scaling_factor=1.5035).eval()
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                          base_image_seq_len=256, max_image_seq_len=4096)
    return diffusers.FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None,
                                  text_encoder_2=None, tokenizer_2=None, transformer=transformer)


@pytest.mark.parametrize("steps,true_cfg", [(4, 1.0), (7, 2.0)])
def test_flux_euler_loop_reproduces_the_pipeline(steps, true_cfg):
    pipe = _flux_pipe()
    g = torch.Generator().manual_seed(5)
    prompt = FluxPrompt(torch.randn(2, 5, 32, generator=g), torch.randn(2, 32, generator=g),
                        torch.randn(2, 5, 32, generator=g), torch.randn(2, 32, generator=g))
    spatial = torch.randn(2, 1, 8, 8, generator=g)                 # vae factor 1 here: a 16×16 image
    h = w = spatial.shape[-1] * pipe.vae_scale_factor
    kwargs = dict(prompt_embeds=prompt.embeds, pooled_prompt_embeds=prompt.pooled, num_inference_steps=steps,
                  guidance_scale=3.5, height=h, width=w, latents=pack_latents(spatial), return_dict=False)
    if true_cfg > 1:
        kwargs.update(negative_prompt_embeds=prompt.negative_embeds,
                      negative_pooled_prompt_embeds=prompt.negative_pooled, true_cfg_scale=true_cfg)
    with torch.no_grad():
        want = pipe(output_type="latent", **kwargs)[0]
        seq_len = pack_latents(spatial).shape[1]
        ours, nfe = sample_flow(FluxVelocity(pipe.transformer, guidance=3.5, true_cfg_scale=true_cfg), spatial,
                                flux_grid(steps, seq_len), get_solver("euler"), prompt, return_nfe=True)
        torch.testing.assert_close(pack_latents(ours), want, rtol=0, atol=1e-5)
        assert nfe == steps
        img = pipe(output_type="pt", **kwargs)[0]
        torch.testing.assert_close(decode_flux(pipe.vae, ours), img, rtol=0, atol=1e-5)


def test_flux_grid_matches_the_scheduler():
    sched = diffusers.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True)
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    import numpy as np

    for steps, seq in [(4, 256), (28, 4096), (10, 1024)]:
        sched.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=calculate_shift(seq))
        grid = flux_grid(steps, seq)
        assert torch.equal(grid.t.float(), sched.sigmas) and torch.equal(grid.timesteps.float(), sched.timesteps)


def test_sana_grid_matches_the_scheduler():
    sched = diffusers.DPMSolverMultistepScheduler(**SANA_SCHEDULER)
    for steps in (1, 5, 8, 20):
        sched.set_timesteps(steps)
        grid = sana_grid(steps)
        assert torch.equal(grid.t.float(), sched.sigmas)
        assert torch.equal(grid.timesteps.long(), sched.timesteps)


def test_packing_round_trip_and_learned_solvers_see_spatial_latents():
    x = torch.randn(3, 16, 6, 10)
    assert torch.equal(unpack_latents(pack_latents(x), 6, 10), x)
    pipe = _flux_pipe()
    g = torch.Generator().manual_seed(6)
    prompt = FluxPrompt(torch.randn(1, 5, 32, generator=g), torch.randn(1, 32, generator=g))
    spatial = torch.randn(1, 1, 8, 8, generator=g)
    sl = get_solver("spanlift", base=get_solver("euler"), num_steps=4, channels=1)   # zero head = its base
    with torch.no_grad():
        a = sample_flow(FluxVelocity(pipe.transformer), spatial, flux_grid(4, 16), sl, prompt)
        b = sample_flow(FluxVelocity(pipe.transformer), spatial, flux_grid(4, 16), get_solver("euler"), prompt)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
