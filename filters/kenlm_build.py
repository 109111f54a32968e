"""Build KenLM's `lmplz` and `build_binary` from the kenlm source distribution, once, into a cache.

Why: the `kenlm` wheel on PyPI ships only the query module (scoring an ARPA/binary model), not the
estimator. CCNet-style perplexity needs a trained 5-gram, and models here are built, not downloaded, so
the two C++ tools are compiled from the same source release the wheel was made from.

The build is idempotent: tools already on PATH or in the cache are used as they are. Otherwise the sdist is
fetched with pip (`pip download --no-binary :all: --no-deps --no-build-isolation kenlm`; no build isolation so
pip does not compile cmake itself from source), configured with cmake and only the two targets are
compiled. Missing system packages are installed with apt-get when running as root, else the error names the
exact apt command. A file lock keeps two processes (test workers, two sessions) from building at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TOOLS = ("lmplz", "build_binary")
KENLM_ENV = "CURATE_KENLM"
APT_PACKAGES = [
    "build-essential",
    "cmake",
    "libboost-program-options-dev",
    "libboost-system-dev",
    "libboost-thread-dev",
    "libboost-test-dev",
    "zlib1g-dev",
    "libbz2-dev",
    "liblzma-dev",
]
# A header (or program) per package, to see whether apt-get is needed at all without asking dpkg.
PREREQUISITES = {
    "cmake": "cmake",
    "g++": "build-essential",
    "make": "build-essential",
    "/usr/include/boost/program_options.hpp": "libboost-program-options-dev",
    "/usr/include/boost/thread.hpp": "libboost-thread-dev",
    "/usr/include/boost/test/unit_test.hpp": "libboost-test-dev",
    "/usr/include/zlib.h": "zlib1g-dev",
    "/usr/include/bzlib.h": "libbz2-dev",
    "/usr/include/lzma.h": "liblzma-dev",
}


class KenLMBuildError(RuntimeError):
    """The tools could not be built; the message is one line naming what is missing and the fix."""


def kenlm_home() -> Path:
    """`$CURATE_KENLM`, else `$CURATE_HOME/kenlm`, else `.cache/kenlm` (beside the other caches)."""
    if os.environ.get(KENLM_ENV):
        return Path(os.environ[KENLM_ENV])
    if os.environ.get("CURATE_HOME"):
        return Path(os.environ["CURATE_HOME"]) / "kenlm"
    return Path(".cache/kenlm")


def find_tools(home: Path | None = None) -> dict[str, Path] | None:
    """Paths of lmplz and build_binary from the cache, else from PATH; None unless both are found."""
    bin_dir = (home or kenlm_home()) / "bin"
    found: dict[str, Path] = {}
    for tool in TOOLS:
        cached = bin_dir / tool
        on_path = shutil.which(tool)
        if cached.is_file() and os.access(cached, os.X_OK):
            found[tool] = cached.resolve()
        elif on_path:
            found[tool] = Path(on_path)
    return found if len(found) == len(TOOLS) else None


def ensure_tools(
    home: Path | None = None, install_packages: bool = True, jobs: int | None = None, log=print
) -> dict[str, Path]:
    """Return the tools, building them first when absent. Safe to call from many processes at once."""
    home = (home or kenlm_home()).resolve()
    tools = find_tools(home)
    if tools:
        return tools
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home / ".build.lock"):
        tools = find_tools(home)  # another process may have finished while we waited
        if tools:
            return tools
        _ensure_prerequisites(install_packages, log)
        source = _fetch_source(home / "src", log)
        _compile(source, home / "build", home / "bin", jobs or min(2, os.cpu_count() or 1), log)
    tools = find_tools(home)
    if not tools:
        raise KenLMBuildError(f"kenlm build finished but {home / 'bin'} lacks {' and '.join(TOOLS)}")
    return tools


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def missing_packages() -> list[str]:
    """apt packages whose program or header is absent, in a stable order."""
    missing: list[str] = []
    for thing, package in PREREQUISITES.items():
        present = Path(thing).exists() if thing.startswith("/") else shutil.which(thing) is not None
        if not present and package not in missing:
            missing.append(package)
    return missing


def _ensure_prerequisites(install_packages: bool, log) -> None:
    missing = missing_packages()
    if not missing:
        return
    command = f"apt-get update && apt-get install -y {' '.join(APT_PACKAGES)}"
    can_apt = install_packages and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0
    if not can_apt:
        raise KenLMBuildError(f"building kenlm needs {', '.join(missing)}: run `{command}` (as root)")
    log(f"installing build packages for kenlm: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *APT_PACKAGES]):
        _run(args, env=env, what=f"`{command}`")
    still = missing_packages()
    if still:
        raise KenLMBuildError(f"apt-get ran but {', '.join(still)} are still missing; run `{command}`")


def _fetch_source(src_dir: Path, log) -> Path:
    """The unpacked kenlm sdist; downloads it with pip unless a tarball is already in `src_dir`."""
    src_dir.mkdir(parents=True, exist_ok=True)
    tarballs = sorted(src_dir.glob("kenlm-*.tar.gz"))
    if not tarballs:
        log("downloading the kenlm source distribution with pip")
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-binary",
                ":all:",
                "--no-deps",
                "--no-build-isolation",
                "--disable-pip-version-check",
                "-q",
                "kenlm",
                "-d",
                str(src_dir),
            ],
            what="`pip download --no-binary :all: --no-deps --no-build-isolation kenlm`",
        )
        tarballs = sorted(src_dir.glob("kenlm-*.tar.gz"))
    if not tarballs:
        raise KenLMBuildError(f"pip did not leave a kenlm-*.tar.gz in {src_dir}")
    tarball = tarballs[-1]
    unpacked = src_dir / tarball.name.removesuffix(".tar.gz")
    if not (unpacked / "CMakeLists.txt").is_file():
        with tarfile.open(tarball) as archive:
            archive.extractall(src_dir, filter="data")
    return unpacked


def _compile(source: Path, build: Path, bin_dir: Path, jobs: int, log) -> None:
    """cmake configure + build of the two targets only, then copy them into `bin_dir`."""
    log(f"compiling kenlm lmplz and build_binary with {jobs} job(s) (a few minutes)")
    _run(
        [
            "cmake",
            "-S",
            str(source),
            "-B",
            str(build),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DKENLM_MAX_ORDER=6",
            "-DCOMPILE_TESTS=OFF",
        ],
        what="cmake configure of kenlm",
    )
    _run(["cmake", "--build", str(build), "--target", *TOOLS, "-j", str(jobs)], what="cmake build of kenlm")
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        staged = bin_dir / f".{tool}.tmp"
        shutil.copy2(build / "bin" / tool, staged)
        staged.replace(bin_dir / tool)


def _run(args: list[str], what: str, env: dict | None = None) -> None:
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise KenLMBuildError(f"{what} failed (exit {result.returncode}): {tail[0]}")


def main() -> None:
    """`python -m filters.kenlm_build`: build (or find) the tools and print where they are."""
    try:
        tools = ensure_tools()
    except KenLMBuildError as error:
        sys.exit(f"error: {error}")
    for name, path in tools.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
