"""Build the worker's Lambda zip: `worker/` plus its runtime dependencies, reproducibly and fast.

- Lambda runs the zip on ITS runtime and architecture: native wheels (pydantic_core, aiohttp, ...)
  are installed for that target (`pip --platform/--python-version/--only-binary`), not for this machine.
- The orchestrator uploads only when base64(sha256(zip)) differs from the function's `CodeSha256`,
  so the same inputs must give the same bytes: entries sorted by name, no directory entries,
  timestamps 1980-01-01 00:00:00, mode 0644, deflate level 6, no bytecode, no `tests/`, no console
  scripts (their shebang names this machine's python) and no install-time dist-info files.
- A run must not wait for pip: the installed tree, and its compressed form, are cached per
  (requirements, python version, platform, pack format) under `~/.cache/ecs-fanout/pack/<key>`
  (`ECS_FANOUT_PACK_CACHE` overrides), written in a temporary directory and renamed into place so a
  crashed build never leaves half a cache. A warm build compresses only `worker/`. Unpinned
  requirements resolve when the cache entry is made and stay fixed for its lifetime.
- The orchestrator builds in its own process: zips are streamed to disk (hashed as they are written,
  dependency entries copied still compressed from the cached zip in chunks), never held whole in memory.
- Lambda refuses a zip over 50 MiB (direct upload) or over 250 MiB unzipped: we refuse first, clearly.

Usage: python pack.py --out dist/worker.zip [--python-version 3.12] [--arch arm64|x86_64] [--cache-dir DIR]
(the defaults are the Lambda function's: `DEFAULT_PYTHON_VERSION` and `DEFAULT_ARCH`, which the
orchestrator's settings use too, so the zip built by hand is the one a run uploads)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, NamedTuple

__all__ = [
    "DEFAULT_ARCH", "DEFAULT_PYTHON_VERSION", "LAMBDA_MAX_UNZIPPED_BYTES", "LAMBDA_MAX_ZIP_BYTES",
    "PLATFORMS", "WORKER_DEPENDENCIES",
    "PackError", "PackResult", "build_zip", "main", "requirements",
]  # fmt: skip

# What worker/ imports at run time; the pins come from pyproject's [project] dependencies. boto3 and
# botocore are in Lambda's Python runtime too, but aioboto3 pins aiobotocore, which pins an exact
# botocore: the runtime's copy is another version, so they stay in the zip (it comes first on sys.path).
WORKER_DEPENDENCIES = ("aioboto3", "anyio", "pydantic", "redis")
PACK_FORMAT_VERSION = 1  # bump when the file selection or the zip layout changes: it is part of the cache key
LAMBDA_MAX_ZIP_BYTES = 50 * 1024 * 1024  # direct upload (CreateFunction / UpdateFunctionCode ZipFile)
LAMBDA_MAX_UNZIPPED_BYTES = 250 * 1024 * 1024  # Lambda: "must be smaller than 262144000 bytes"
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
# The Lambda function's defaults, in one place: orchestrator.settings.LambdaSettings's
# `architecture` and `runtime` (python<version>) default to these too.
DEFAULT_ARCH: Final = "arm64"  # Graviton: cheaper per GB-second than x86_64
DEFAULT_PYTHON_VERSION: Final = "3.12"
COMPRESS_LEVEL = 6
ROOT = Path(__file__).resolve().parent  # worker/ sits next to pack.py, in the repo and once installed
_DOS_TIME, _DOS_DATE = 0, (1 << 5) | 1  # 1980-01-01 00:00:00
_MODE = 0o100644 << 16  # regular file, rw-r--r--
_VOLATILE = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})  # differ between installs
_CHUNK = 256 * 1024  # copy/read granularity: bounds what a build holds in memory at once


class PackError(Exception):
    """The zip cannot be built, or Lambda would refuse it."""


@dataclass(frozen=True)
class PackResult:
    path: Path
    sha256_hex: str
    code_sha256: str  # base64 of the raw SHA-256 digest: what Lambda reports as CodeSha256
    size: int
    unzipped_size: int
    cached: bool  # the dependency tree came from the cache
    seconds: float


class _Entry(NamedTuple):
    name: str
    crc: int
    size: int
    compress_size: int
    data: bytes | None  # raw deflate stream; None: it is in the cached deps.zip, local header at `offset`
    offset: int = 0


def requirements() -> tuple[str, ...]:
    """`WORKER_DEPENDENCIES` with their pins from pyproject (or the installed distribution's metadata)."""
    pyproject = ROOT / "pyproject.toml"
    try:
        declared: list[str] = (
            tomllib.loads(pyproject.read_text())["project"]["dependencies"]
            if pyproject.is_file()
            else importlib.metadata.requires("ecs-fanout") or []
        )
    except importlib.metadata.PackageNotFoundError:
        declared = []
    pins = {_canonical(re.split(r"[^A-Za-z0-9._-]", d)[0]): d.strip() for d in declared if ";" not in d}
    return tuple(pins.get(_canonical(name), name) for name in WORKER_DEPENDENCIES)


def build_zip(
    out: Path | None = None,
    *,
    python_version: str = DEFAULT_PYTHON_VERSION,
    arch: str = DEFAULT_ARCH,
    cache_dir: Path | None = None,
    max_zip_bytes: int = LAMBDA_MAX_ZIP_BYTES,
    max_unzipped_bytes: int = LAMBDA_MAX_UNZIPPED_BYTES,
) -> PackResult:
    """Write the worker's zip to `out` (default: `<cache>/dist/worker-py<version>-<arch>.zip`)."""
    started = time.monotonic()
    if not re.fullmatch(r"3\.\d{1,2}", python_version):
        raise PackError(f"python version must look like 3.12, not {python_version!r}")
    if arch not in PLATFORMS:
        raise PackError(f"architecture must be one of {', '.join(sorted(PLATFORMS))}, not {arch!r}")
    if not (ROOT / "worker" / "__init__.py").is_file():
        raise PackError(f"no worker package next to {__file__}")
    root = _cache_root(cache_dir)
    reqs = requirements()
    key = _cache_key(reqs, python_version, arch)
    deps = root / key / "deps.zip"
    cached = deps.is_file()
    if not cached:
        _fill_cache(root, key, reqs, python_version, arch)
    worker = list(_deflated(ROOT / "worker", "worker/"))
    entries = sorted([*_stored_entries(deps), *worker], key=lambda e: e.name)
    if len({e.name for e in entries}) != len(entries):
        raise PackError("a dependency ships files under worker/: it would shadow our package")
    unzipped = sum(e.size for e in entries)
    if unzipped > max_unzipped_bytes:
        raise PackError(f"unzipped size {unzipped:,} bytes is over Lambda's limit of {max_unzipped_bytes:,}")
    size = 22 + sum(76 + 2 * len(e.name.encode()) + e.compress_size for e in entries)  # see _write_zip
    if size > max_zip_bytes:
        raise PackError(f"zip size {size:,} bytes is over Lambda's upload limit of {max_zip_bytes:,}")
    path = Path(out) if out is not None else root / "dist" / f"worker-py{python_version}-{arch}.zip"
    size, digest = _write_zip(path, entries, source=deps)
    return PackResult(
        path=path,
        sha256_hex=digest.hex(),
        code_sha256=base64.b64encode(digest).decode(),
        size=size,
        unzipped_size=unzipped,
        cached=cached,
        seconds=time.monotonic() - started,
    )


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _cache_root(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if env := os.environ.get("ECS_FANOUT_PACK_CACHE"):
        return Path(env).expanduser()
    return Path.home() / ".cache" / "ecs-fanout" / "pack"


def _cache_key(reqs: Sequence[str], python_version: str, arch: str) -> str:
    key = [sorted(reqs), python_version, PLATFORMS[arch], PACK_FORMAT_VERSION]
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def _fill_cache(root: Path, key: str, reqs: Sequence[str], python_version: str, arch: str) -> None:
    """Install and compress the dependencies in a temporary directory, then rename it to `root/key`."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        _install(reqs, tmp / "site", python_version, PLATFORMS[arch])
        _write_zip(tmp / "deps.zip", _deflated(tmp / "site"))
        info = {"requirements": reqs, "python": python_version, "arch": arch, "format": PACK_FORMAT_VERSION}
        (tmp / "key.json").write_text(json.dumps(info) + "\n")
        try:
            tmp.rename(root / key)
        except OSError:  # a concurrent build got there first; its entry is as good as ours
            if not (root / key / "deps.zip").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _install(reqs: Sequence[str], target: Path, python_version: str, platform: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check"]
    cmd += ["--no-compile", "--target", str(target), "--platform", platform, "--implementation", "cp"]
    cmd += ["--python-version", python_version, "--only-binary=:all:", *reqs]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PackError(
            f"pip could not install {' '.join(reqs)} for python {python_version} on {platform}:\n"
            + proc.stderr.strip()[-3000:]
        )


def _keep(name: str) -> bool:
    parts = name.split("/")
    if parts[0] == "bin" or "__pycache__" in parts or "tests" in parts[:-1] or parts[-1].endswith(".pyc"):
        return False
    return not (parts[0].endswith(".dist-info") and parts[-1] in _VOLATILE)


def _deflate(name: str, path: Path) -> _Entry:
    data = path.read_bytes()
    compressor = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -15)  # raw deflate, as zip stores it
    raw = compressor.compress(data) + compressor.flush()
    return _Entry(name, zlib.crc32(data), len(data), len(raw), raw)


def _deflated(directory: Path, prefix: str = "") -> Iterator[_Entry]:
    """The kept files under `directory`, compressed in parallel and yielded sorted by name.

    Only a few files are in flight at a time, so a cold build never holds the whole tree compressed.
    """
    paths = {prefix + p.relative_to(directory).as_posix(): p for p in directory.rglob("*") if p.is_file()}
    names = sorted(name for name in paths if _keep(name))
    workers = min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's own default
    window: deque[Future[_Entry]] = deque()
    with ThreadPoolExecutor(workers) as pool:  # zlib releases the GIL
        for name in names:
            window.append(pool.submit(_deflate, name, paths[name]))
            if len(window) > 2 * workers:  # enough queued to keep every thread busy
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def _stored_entries(path: Path) -> list[_Entry]:
    """Where each entry of a zip we wrote sits: a warm build copies them, still compressed, from the file."""
    with zipfile.ZipFile(path) as archive:  # reads only the central directory
        return [
            _Entry(i.filename, i.CRC, i.file_size, i.compress_size, None, i.header_offset)
            for i in archive.infolist()
        ]


class _HashingWriter:
    """Writes to a file, hashing and counting what it writes (a zip needs its own offsets)."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file, self.sha256, self.size = file, hashlib.sha256(), 0

    def write(self, data: bytes | bytearray) -> None:
        self.file.write(data)
        self.sha256.update(data)
        self.size += len(data)


def _copy_stored(source: IO[bytes], entry: _Entry, out: _HashingWriter) -> None:
    """Copy `entry`'s raw deflate stream out of the zip `source`, a chunk at a time."""
    source.seek(entry.offset)
    header = source.read(30)
    if header[:4] != b"PK\x03\x04":
        raise PackError(f"{source.name} is damaged: delete its directory to rebuild it")
    source.seek(sum(struct.unpack_from("<HH", header, 26)), os.SEEK_CUR)  # past name and extra field
    remaining = entry.compress_size
    while remaining:
        chunk = source.read(min(remaining, _CHUNK))
        if not chunk:
            raise PackError(f"{source.name} is truncated: delete its directory to rebuild it")
        out.write(chunk)
        remaining -= len(chunk)


def _write_zip(path: Path, entries: Iterable[_Entry], source: Path | None = None) -> tuple[int, bytes]:
    """Stream a plain zip (no zip64, no directory entries) of `entries`, already sorted by name and with
    fixed metadata, to `path` atomically; entries without data are copied from the zip `source`.

    Per entry: a 30-byte local header + name + data, and a 46-byte central header + name; 22 bytes of
    end record: `build_zip` relies on this to check the size before writing. Returns (size, sha256).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with contextlib.ExitStack() as files:
            out = _HashingWriter(files.enter_context(os.fdopen(fd, "wb", buffering=_CHUNK)))
            src = files.enter_context(open(source, "rb", buffering=_CHUNK)) if source is not None else None
            central, count = bytearray(), 0
            for entry in entries:
                name = entry.name.encode()
                fields = struct.pack(
                    "<5H3LH", 20, 0 if name.isascii() else 0x800, 8, _DOS_TIME, _DOS_DATE,
                    entry.crc, entry.compress_size, entry.size, len(name),
                )  # fmt: skip
                central += b"PK\x01\x02" + struct.pack("<H", 0x0314) + fields  # made by: unix, zip 2.0
                central += struct.pack("<4H2L", 0, 0, 0, 0, _MODE, out.size) + name
                out.write(b"PK\x03\x04" + fields + b"\0\0" + name)
                if entry.data is not None:
                    out.write(entry.data)
                elif src is not None:
                    _copy_stored(src, entry, out)
                else:
                    raise PackError(f"{entry.name}: no data and no zip to copy it from")
                count += 1
            body = out.size
            if count > 0xFFFF or body + len(central) > 0xFFFFFFFF:
                raise PackError(f"{count:,} files / {body:,} bytes need zip64, which this writer does not do")
            out.write(central)
            out.write(b"PK\x05\x06" + struct.pack("<4H2LH", 0, 0, count, count, len(central), body, 0))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 is for the temporary file, not the artefact
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out.size, out.sha256.digest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pack.py", description="Build the worker's Lambda zip.")
    parser.add_argument("--out", type=Path, default=Path("dist/worker.zip"), help="default: %(default)s")
    parser.add_argument(
        "--python-version", default=DEFAULT_PYTHON_VERSION, help="Lambda runtime (default: %(default)s)"
    )
    parser.add_argument("--arch", default=DEFAULT_ARCH, help="arm64 or x86_64 (default: %(default)s)")
    parser.add_argument("--cache-dir", type=Path, help="default: ~/.cache/ecs-fanout/pack")
    args = parser.parse_args(argv)
    try:
        result = build_zip(
            args.out, python_version=args.python_version, arch=args.arch, cache_dir=args.cache_dir
        )
    except PackError as exc:
        print(f"pack.py: {exc}", file=sys.stderr)
        return 2
    deps = "cached" if result.cached else "freshly installed"
    print(f"{result.path}: {result.size:,} bytes ({result.unzipped_size:,} unzipped), {deps} dependencies")
    print(f"sha256 {result.sha256_hex}  CodeSha256 {result.code_sha256}  {result.seconds:.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
