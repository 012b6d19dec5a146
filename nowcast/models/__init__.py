"""The PreDiff-style latent diffusion nowcaster.

Modules
-------
vae
    Frame-wise KL autoencoder (×8 spatial downsampling), its loss and a PatchGAN discriminator.
unet
    Earthformer-UNet-style space-time denoiser with axial attention and relative position bias.
ldm
    The diffusion wrapper: β schedule, ε-loss with learned per-timestep log-variance, adaptation to
    the solver core's Denoiser, ensemble sampling with any solver.
ema
    Exponential moving average of parameters.
"""
