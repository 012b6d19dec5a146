"""Image generation on the solver core: EDM pickles, SANA/FLUX through diffusers, FID/KID, a CPU benchmark."""
