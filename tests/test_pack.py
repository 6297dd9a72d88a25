"""pack.py: the Lambda zip is complete, reproducible, importable on its own, and within Lambda's limits.

These tests run pip for real (the package index is reachable): the dependency cache lives in a
session-scoped temporary directory, so each (python version, arch) is installed once per session.
"""

from __future__ import annotations

import base64
import hashlib
import json
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import pack
from orchestrator.settings import LambdaSettings

HERE_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
HERE_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(
    platform.machine().lower(), "x86_64"
)

PACKAGES = ("pydantic/", "pydantic_core/", "redis/", "anyio/", "aiobotocore/", "aioboto3/", "botocore/")
Builds = tuple[pack.PackResult, pack.PackResult]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pack-cache")


@pytest.fixture(scope="session")
def builds(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Builds:
    """The default target (the Lambda function's: python 3.12, arm64) built twice: cold, then cached."""
    out = tmp_path_factory.mktemp("pack-out")
    first = pack.build_zip(out / "first.zip", cache_dir=cache_dir)
    second = pack.build_zip(out / "second.zip", cache_dir=cache_dir)
    return first, second


@pytest.fixture(scope="session")
def native_zip(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zip for THIS interpreter and machine, so its native wheels (pydantic_core, ...) load here."""
    out = tmp_path_factory.mktemp("pack-native") / "worker.zip"
    return pack.build_zip(out, python_version=HERE_PYTHON, arch=HERE_ARCH, cache_dir=cache_dir).path


def test_two_builds_are_identical_and_the_second_uses_the_cache(
    builds: Builds,
) -> None:
    first, second = builds
    assert not first.cached
    assert second.cached
    assert first.sha256_hex == second.sha256_hex
    assert first.path.read_bytes() == second.path.read_bytes()


MEASURE_WARM_BUILD = """
import json, resource, sys, tracemalloc
from pathlib import Path
import pack
cache, out = Path(sys.argv[1]), Path(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
first = pack.build_zip(out / "first.zip", cache_dir=cache)
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
tracemalloc.start()
second = pack.build_zip(out / "second.zip", cache_dir=cache)
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"size": first.size, "rss_growth": grown, "python_peak": peak,
                  "digests": [first.sha256_hex, second.sha256_hex]}))
"""


def test_a_warm_build_streams_instead_of_holding_the_zip(
    builds: Builds, cache_dir: Path, tmp_path: Path
) -> None:
    """In a fresh process, as in the orchestrator: memory stays far below the zip's size (the old
    in-memory writer grew by ~4x the zip), and the bytes match the session's builds exactly."""
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE_WARM_BUILD, str(cache_dir), str(tmp_path)],
        cwd=pack.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    measured = json.loads(proc.stdout)
    size = builds[0].size
    assert measured["size"] == size > 10_000_000  # the dependencies make it ~20 MB: a fair yardstick
    assert measured["python_peak"] < size / 4, measured
    assert measured["rss_growth"] < size / 2, measured
    assert measured["digests"] == [builds[0].sha256_hex] * 2
    assert (tmp_path / "second.zip").read_bytes() == builds[0].path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.zip", "second.zip"]  # no temporary left


def test_digests_describe_the_file(builds: Builds) -> None:
    result = builds[0]
    blob = result.path.read_bytes()
    digest = hashlib.sha256(blob).digest()
    assert result.sha256_hex == digest.hex()
    assert result.code_sha256 == base64.b64encode(digest).decode()  # Lambda's CodeSha256
    assert result.size == len(blob)


def test_zip_contents_and_fixed_metadata(builds: Builds) -> None:
    with zipfile.ZipFile(builds[0].path) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert "worker/contract.py" in names
    assert "worker/__init__.py" in names
    for package in PACKAGES:
        assert any(name.startswith(package) for name in names), package
    assert not any(name.endswith("/") for name in names)  # no directory entries
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert not any("/tests/" in f"/{name}" for name in names)
    assert not any(name.startswith("bin/") for name in names)
    dist_info_files = {name.rsplit("/", 1)[-1] for name in names if ".dist-info/" in name}
    assert not dist_info_files & {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}
    assert {info.compress_type for info in infos} == {zipfile.ZIP_DEFLATED}


def test_requirements_follow_pyproject_pins() -> None:
    requirements = pack.requirements()
    assert len(requirements) == len(pack.WORKER_DEPENDENCIES)
    assert "aioboto3==15.5.0" in requirements
    assert any(req.startswith("pydantic>=") for req in requirements)


def test_worker_imports_from_the_zip_alone(native_zip: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(native_zip) as archive:
        archive.extractall(site)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import worker.contract, worker.engine, worker.publisher, pydantic_core, aiobotocore, redis; "
        "print(worker.engine.__file__); print(pydantic_core.__file__); print(aiobotocore.__file__)"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code, str(site)],
        env={},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    files = [Path(line) for line in proc.stdout.split()]
    assert len(files) == 3
    for file in files:
        assert file.resolve().is_relative_to(site.resolve()), file


def test_size_limits_refuse(cache_dir: Path, tmp_path: Path, builds: Builds) -> None:
    out = tmp_path / "too-big.zip"
    with pytest.raises(pack.PackError, match="upload limit"):
        pack.build_zip(out, cache_dir=cache_dir, max_zip_bytes=1000)
    with pytest.raises(pack.PackError, match="unzipped size"):
        pack.build_zip(out, cache_dir=cache_dir, max_unzipped_bytes=1000)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_a_failed_install_leaves_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(requirements: object, target: Path, python_version: str, platform: str) -> None:
        target.mkdir(parents=True)
        (target / "half.py").write_text("")
        raise pack.PackError("pip died")

    monkeypatch.setattr(pack, "_install", crash)
    with pytest.raises(pack.PackError, match="pip died"):
        pack.build_zip(tmp_path / "w.zip", cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_script_exit_codes(
    cache_dir: Path, tmp_path: Path, builds: Builds, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dist" / "worker.zip"
    assert pack.main(["--out", str(out), "--cache-dir", str(cache_dir)]) == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == builds[0].sha256_hex
    assert builds[0].sha256_hex in capsys.readouterr().out
    assert pack.main(["--out", str(out), "--cache-dir", str(cache_dir), "--arch", "sparc"]) == 2
    assert pack.main(["--out", str(out), "--cache-dir", str(cache_dir), "--python-version", "2.7"]) == 2
    assert "pack.py:" in capsys.readouterr().err


def test_the_default_zip_is_the_one_a_run_uploads(builds: Builds, cache_dir: Path, tmp_path: Path) -> None:
    """`pack.py --out` (test_script_exit_codes: the same bytes as `builds`) packs for the function's
    default runtime and architecture, as the lambda executor does: its native wheels are arm64's."""
    defaults = {name: info.default for name, info in LambdaSettings.model_fields.items()}
    assert defaults["architecture"] == pack.DEFAULT_ARCH
    assert defaults["runtime"] == f"python{pack.DEFAULT_PYTHON_VERSION}"
    uploaded = pack.build_zip(
        tmp_path / "run.zip",
        python_version=defaults["runtime"].removeprefix("python"),
        arch=defaults["architecture"],
        cache_dir=cache_dir,
    )
    assert uploaded.sha256_hex == builds[0].sha256_hex
    with zipfile.ZipFile(builds[0].path) as archive:
        native = [name for name in archive.namelist() if name.startswith("pydantic_core/") and ".so" in name]
    assert native and all("aarch64" in name for name in native), native


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECS_FANOUT_PACK_CACHE", str(tmp_path / "env-cache"))
    assert pack._cache_root(None) == tmp_path / "env-cache"
    assert pack._cache_root(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("ECS_FANOUT_PACK_CACHE")
    assert pack._cache_root(None) == Path.home() / ".cache" / "ecs-fanout" / "pack"
