"""``python -m nowcast.imagegen`` end to end on a tiny untrained model."""

import json

import numpy as np
import pytest
from PIL import Image

from nowcast.imagegen.__main__ import main
from nowcast.imagegen.datasets import load_images
from nowcast.imagegen.tiny import TinyEDMConfig, train_tiny_edm


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    x = load_images("digits").images[:64]
    cfg = TinyEDMConfig(shape=(1, 8, 8), width=16, blocks=1, emb_dim=8, steps=5, batch_size=8, sigma_data=0.75)
    return str(train_tiny_edm(x, cfg, tmp_path_factory.mktemp("tiny")))


def test_sample_png_npz_and_folder(tiny_model, tmp_path, capsys):
    assert main(["sample", "--model", tiny_model, "--solver", "ipndm", "--steps", "4", "--n", "9",
                 "--out", str(tmp_path / "grid.png")]) == 0
    assert "4 NFE" in capsys.readouterr().out
    assert Image.open(tmp_path / "grid.png").size[0] >= 24
    assert main(["sample", "--model", tiny_model, "--n", "5", "--out", str(tmp_path / "s.npz")]) == 0
    imgs = np.load(tmp_path / "s.npz")["images"]
    assert imgs.shape == (5, 1, 8, 8) and imgs.dtype == np.uint8
    assert main(["sample", "--model", tiny_model, "--n", "5", "--afs", "--out", str(tmp_path / "folder")]) == 0
    assert len(list((tmp_path / "folder").glob("*.png"))) == 5
    # same seed, same images; existing output refused
    assert main(["sample", "--model", tiny_model, "--n", "5", "--out", str(tmp_path / "s.npz")]) == 2
    assert main(["sample", "--model", tiny_model, "--n", "5", "--out", str(tmp_path / "s.npz"), "--overwrite"]) == 0
    assert np.array_equal(np.load(tmp_path / "s.npz")["images"], imgs)


def test_bad_inputs_exit_2_with_one_message(tiny_model, tmp_path, capsys):
    cases = [["sample", "--model", str(tmp_path / "net.pkl"), "--out", str(tmp_path / "a.png")],   # untrusted pickle
             ["sample", "--model", tiny_model, "--class", "3", "--out", str(tmp_path / "b.png")],  # unconditional
             ["sample", "--model", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "c.png")],
             ["fid", str(tmp_path)]]
    errors = []
    for argv in cases:
        assert main(argv) == 2, argv
        errors.append(capsys.readouterr().err)
        assert errors[-1].startswith("error:") and "Traceback" not in errors[-1]
    assert "--trust-pickle" in errors[0] and "unconditional" in errors[1] and "missing.pt" in errors[2]
    assert not any((tmp_path / n).exists() for n in ("a.png", "b.png", "c.png"))


def test_train_solver_then_sample_with_it(tiny_model, tmp_path):
    run = tmp_path / "run"
    assert main(["train-solver", "--model", tiny_model, "--solver", "dyweight", "--nfe", "3", "--iterations", "4",
                 "--batch-size", "8", "--teacher", "heun:8", "--run-dir", str(run), "--no-progress"]) == 0
    assert main(["sample", "--model", tiny_model, "--solver", str(run / "solver.pt"), "--n", "4",
                 "--out", str(tmp_path / "x.npz")]) == 0


def test_fid_command_against_a_folder_and_saved_stats(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    stats = tmp_path / "b.npz"
    assert main(["fid", str(tmp_path / "b"), "--save-stats", str(stats), "--no-progress"]) == 0
    assert main(["fid", str(tmp_path / "a"), "--ref", str(stats), "--no-progress"]) == 0
    out = capsys.readouterr().out
    fid = float(out.split("FID ")[1].split()[0])
    assert fid > 0 and "KID" in out
    assert main(["fid", str(tmp_path / "a"), "--ref", str(tmp_path / "a"), "--no-progress"]) == 0
    assert abs(float(capsys.readouterr().out.split("FID ")[1].split()[0])) < 1e-3


def test_bench_smoke(tiny_model, tmp_path):
    out = tmp_path / "res"
    assert main(["bench", "--model", tiny_model, "--nfe", "3", "--samples", "40", "--iterations", "2",
                 "--batch-size", "8", "--no-fid", "--teacher", "heun:8", "--train-teacher", "heun:4",
                 "--work-dir", str(tmp_path / "work"), "--out", str(out)]) == 0
    res = json.loads((out / "imagegen.json").read_text())
    solvers = {r["solver"] for r in res["records"]}
    assert solvers == {"teacher", "euler", "ipndm", "dpmpp-3m", "unipc", "dyweight", "spanlift"}
    assert all(r["nfe"] == 3 for r in res["records"] if r["solver"] != "teacher")
    assert res["command"].startswith("python -m nowcast.imagegen bench") and res["commit"]
    assert "| spanlift (on dyweight) |" in (out / "imagegen.md").read_text()


def test_bench_resumes_from_cached_scores(tiny_model, tmp_path, monkeypatch):
    """A second run with the same settings samples only the teacher (needed for nothing it has not
    scored) and reports the same scores; more samples are new sets and are sampled again."""
    import nowcast.imagegen.bench as bench

    args = ["bench", "--model", tiny_model, "--nfe", "3", "--samples", "24", "--iterations", "2",
            "--batch-size", "8", "--no-fid", "--teacher", "heun:8", "--train-teacher", "heun:4",
            "--work-dir", str(tmp_path / "work")]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    first = json.loads((tmp_path / "a" / "imagegen.json").read_text())["records"]

    calls = []
    real_sample = bench.sample_images
    monkeypatch.setattr(bench, "sample_images", lambda *a, **k: calls.append(a[3]) or real_sample(*a, **k))
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    second = json.loads((tmp_path / "b" / "imagegen.json").read_text())["records"]
    assert len(calls) == 1                                  # the teacher only
    strip = ("train_seconds", "wall_seconds")
    assert [{k: v for k, v in r.items() if k not in strip} for r in second] == \
           [{k: v for k, v in r.items() if k not in strip} for r in first]

    calls.clear()
    assert main([a if a != "24" else "16" for a in args] + ["--out", str(tmp_path / "c")]) == 0
    assert len(calls) == 7                                  # teacher + 4 hand-crafted + 2 learned
