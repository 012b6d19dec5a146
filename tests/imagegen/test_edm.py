"""EDM pickles: written here in EDM's persistence format, loaded with no EDM code importable."""

import pickle
import subprocess
import sys
import textwrap
import types

import pytest
import torch

from nowcast.imagegen.edm import EDMDenoiser, UntrustedPickleError, load_edm, load_edm_pickle, resolve_edm

# A self-written stand-in for EDM's training/networks.py: same import line, same decorator, same
# EDMPrecond interface and preconditioning (Karras et al. 2022, Table 1), a tiny conv net inside.
NETWORK_SRC = textwrap.dedent('''
    import numpy as np
    import torch
    from torch_utils import persistence
    from torch.nn.functional import silu

    @persistence.persistent_class
    class TinyNet(torch.nn.Module):
        def __init__(self, channels, label_dim, width=8):
            super().__init__()
            self.conv_in = torch.nn.Conv2d(channels, width, 3, padding=1)
            self.emb = torch.nn.Linear(1 + label_dim, width)
            self.conv_out = torch.nn.Conv2d(width, channels, 3, padding=1)

        def forward(self, x, noise_labels, class_labels):
            e = noise_labels.reshape(-1, 1)
            if class_labels is not None:
                e = torch.cat([e, class_labels], dim=1)
            h = silu(self.conv_in(x) + self.emb(e)[:, :, None, None])
            return self.conv_out(h)

    @persistence.persistent_class
    class EDMPrecond(torch.nn.Module):
        def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False,
                     sigma_min=0, sigma_max=float('inf'), sigma_data=0.5, **model_kwargs):
            super().__init__()
            self.img_resolution = img_resolution
            self.img_channels = img_channels
            self.label_dim = label_dim
            self.use_fp16 = use_fp16
            self.sigma_min = sigma_min
            self.sigma_max = sigma_max
            self.sigma_data = sigma_data
            self.model = TinyNet(img_channels, label_dim, **model_kwargs)

        def forward(self, x, sigma, class_labels=None, force_fp32=False, **model_kwargs):
            x = x.to(torch.float32)
            sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1)
            class_labels = None if self.label_dim == 0 else (
                torch.zeros([1, self.label_dim], device=x.device) if class_labels is None
                else class_labels.to(torch.float32).reshape(-1, self.label_dim))
            c_skip = self.sigma_data ** 2 / (sigma ** 2 + self.sigma_data ** 2)
            c_out = sigma * self.sigma_data / (sigma ** 2 + self.sigma_data ** 2).sqrt()
            c_in = 1 / (self.sigma_data ** 2 + sigma ** 2).sqrt()
            c_noise = sigma.log() / 4
            F_x = self.model(c_in * x, c_noise.flatten(), class_labels)
            return c_skip * x + c_out * F_x.to(torch.float32)

    @persistence.persistent_class
    class EDMLoss:
        def __init__(self, P_mean=-1.2, P_std=1.2, sigma_data=0.5):
            self.P_mean, self.P_std, self.sigma_data = P_mean, P_std, sigma_data
''')


def _reconstruct_persistent_obj(meta):  # only referenced by name in the pickle
    raise AssertionError("the loader must not call the writer's reconstruct function")


def _persistence_writer():
    """Fake ``torch_utils``/``dnnlib`` modules that make classes pickle exactly as EDM's do."""
    pkg = types.ModuleType("torch_utils")
    pkg.__path__ = []
    persistence = types.ModuleType("torch_utils.persistence")

    def persistent_class(orig):
        class Decorator(orig):
            _orig_module_src = NETWORK_SRC
            _orig_class_name = orig.__name__

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self._init_args = list(args)
                self._init_kwargs = dict(kwargs)

            def __reduce__(self):
                fields = list(super().__reduce__()) + [None] * 3
                meta = dict(type="class", version=6, module_src=self._orig_module_src,
                            class_name=self._orig_class_name, state=fields[2])
                fields[0] = persistence._reconstruct_persistent_obj
                fields[1] = (meta,)
                fields[2] = None
                return tuple(fields[:5])

        Decorator.__name__ = orig.__name__
        return Decorator

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    persistence.persistent_class = persistent_class
    pkg.persistence = persistence
    dnnlib = types.ModuleType("dnnlib")
    dnnlib.__path__ = []
    util = types.ModuleType("dnnlib.util")

    class EasyDict(dict):
        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    util.EasyDict = EasyDict
    dnnlib.util = util
    return {"torch_utils": pkg, "torch_utils.persistence": persistence, "dnnlib": dnnlib,
            "dnnlib.util": util}


@pytest.fixture(scope="module")
def edm_file(tmp_path_factory):
    """An EDM-format snapshot of a tiny class-conditional network and the original network."""
    mods = _persistence_writer()
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        ns = types.ModuleType("edm_networks_writer")
        exec(compile(NETWORK_SRC, "networks.py", "exec"), ns.__dict__)
        torch.manual_seed(0)
        net = ns.EDMPrecond(img_resolution=8, img_channels=3, label_dim=10, width=8).eval()
        EasyDict = mods["dnnlib.util"].EasyDict
        data = dict(ema=net, loss_fn=ns.EDMLoss(), augment_pipe=None,
                    dataset_kwargs=EasyDict(path="cifar10-32x32.zip", xflip=False))
        path = tmp_path_factory.mktemp("edm") / "network-snapshot-000000.pkl"
        with open(path, "wb") as f:
            pickle.dump(data, f)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return path, net


def _inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 8, 8, generator=g) * 5
    sigma = torch.tensor([80.0, 5.0, 0.3, 0.002])
    labels = torch.tensor([0, 3, 9, 3])
    return x, sigma, labels


def test_pickle_loads_without_edm_code_and_matches(edm_file):
    path, net = edm_file
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    data = load_edm_pickle(path, trust=True)
    assert type(data["ema"]).__name__ == "EDMPrecond"
    assert type(data["loss_fn"]).__name__ == "EDMLoss" and data["loss_fn"].P_mean == -1.2
    assert data["dataset_kwargs"].path == "cifar10-32x32.zip"      # EasyDict attribute access
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules  # shims removed again

    den = load_edm(path, trust=True)
    assert isinstance(den, EDMDenoiser)
    assert den.shape == (3, 8, 8) and den.label_dim == 10
    assert (den.sigma_min, den.sigma_max) == (0.002, 80.0)          # [0, inf] clamped like diff-sampler
    x, sigma, labels = _inputs()
    onehot = torch.nn.functional.one_hot(labels, 10).float()
    with torch.no_grad():
        want = net(x, sigma, onehot)
        assert torch.equal(den(x, sigma, labels), want)
        assert torch.equal(den(x, sigma, onehot), want)
        # independent oracle: EDM preconditioning around the stored inner network
        s = sigma.reshape(-1, 1, 1, 1)
        f = net.model(x / (s ** 2 + 0.25).sqrt(), sigma.log() / 4, onehot)
        oracle = 0.25 / (s ** 2 + 0.25) * x + s * 0.5 / (s ** 2 + 0.25).sqrt() * f
        torch.testing.assert_close(den(x, sigma, labels), oracle, rtol=1e-5, atol=1e-5)


def test_pickle_loads_in_a_fresh_process(edm_file):
    path, net = edm_file
    x, sigma, labels = _inputs()
    with torch.no_grad():
        want = net(x, sigma, torch.nn.functional.one_hot(labels, 10).float())
    code = textwrap.dedent(f"""
        import torch, sys
        from nowcast.imagegen.edm import load_edm
        x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 5
        den = load_edm({str(path)!r}, trust=True)
        with torch.no_grad():
            out = den(x, torch.tensor([80.0, 5.0, 0.3, 0.002]), torch.tensor([0, 3, 9, 3]))
        torch.save(out, sys.argv[1])
    """)
    out_file = path.parent / "out.pt"
    subprocess.run([sys.executable, "-c", code, str(out_file)], check=True)
    assert torch.equal(torch.load(out_file), want)


def test_refuses_without_trust(edm_file, monkeypatch):
    path, _ = edm_file
    opened = []
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a) or (_ for _ in ()).throw(OSError))
    with pytest.raises(UntrustedPickleError, match="runs the Python code stored in it.*trust"):
        load_edm(path)
    assert opened == []                                             # the file was not even opened


def test_bad_labels_and_bad_files(edm_file, tmp_path):
    path, _ = edm_file
    den = load_edm(path, trust=True)
    x, sigma, _ = _inputs()
    with pytest.raises(ValueError, match="class-conditional"):
        den(x, sigma)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        den(x, sigma, torch.tensor([0, 1, 2, 10]))
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(pickle.UnpicklingError, match="not a readable EDM network pickle"):
        load_edm(bad, trust=True)
    with pytest.raises(FileNotFoundError, match="no such EDM pickle"):
        load_edm(tmp_path / "missing.pkl", trust=True)


def test_url_is_fetched_once_into_the_cache(edm_file, tmp_path, monkeypatch):
    path, _ = edm_file
    monkeypatch.setenv("NOWCAST_CACHE", str(tmp_path / "cache"))
    first = resolve_edm(path.as_uri())
    assert first.parent == tmp_path / "cache" / "edm" and first.read_bytes() == path.read_bytes()
    assert resolve_edm(path.as_uri()) == first
    with pytest.raises(FileNotFoundError, match="could not fetch"):
        resolve_edm((tmp_path / "absent.pkl").as_uri())


def test_learned_solver_trains_on_a_class_conditional_edm_network(edm_file, tmp_path):
    from nowcast.imagegen.learned import ImageSolverConfig, load_image_solver, train_image_solver

    den = load_edm(edm_file[0], trust=True)
    seen = []
    inner = den.labels
    den.labels = lambda cond, b, dev: seen.append(cond) or inner(cond, b, dev)   # record the drawn labels
    cfg = ImageSolverConfig(solver="dyweight", nfe=3, iterations=2, batch_size=4, val_size=4, teacher="euler:6")
    train_image_solver(den, den.shape, cfg, run_dir=tmp_path)
    labels = torch.cat([c for c in seen if c is not None])
    assert labels.dtype == torch.int64 and 0 <= int(labels.min()) and int(labels.max()) < 10
    assert load_image_solver(tmp_path / "solver.pt")[0].name == "dyweight"
