"""Build llama-cpp-python for the CPU it runs on, without the kernels known to crash.

`make install` runs this with the virtual environment's Python (standard library only, since it
runs before the project's dependencies are installed):

    python scripts/llama_build.py install   # build (or reuse) and install the wheel
    python scripts/llama_build.py selftest  # `billumy selftest`; if it dies, rebuild portable once

Why: pip compiles llama.cpp with `-march=native`, which turns on its AMX kernels on CPUs that
report AMX, and those crash (SIGILL / SIGSEGV) on the machines this project runs on. Here ggml's
`GGML_NATIVE` is off and every instruction-set option is set from what the CPU reports, except
AMX. The flags are recorded in the environment (`billumy-llama-build.json`) and the wheel is
cached under a key made of the version, the flags, the compiler and the machine, so a wheel built
for another CPU is never reused silently (pip's own wheel cache is keyed on the sdist only).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "llama-cpp-python"
RECORD_NAME = "billumy-llama-build.json"

# ggml's x86 options and the /proc/cpuinfo flags each needs. AMX_* are never turned on.
X86_OPTIONS: dict[str, tuple[str, ...]] = {
    "GGML_SSE42": ("sse4_2",),
    "GGML_AVX": ("avx",),
    "GGML_AVX2": ("avx2",),
    "GGML_BMI2": ("bmi2",),
    "GGML_FMA": ("fma",),
    "GGML_F16C": ("f16c",),
    "GGML_AVX_VNNI": ("avx_vnni",),
    "GGML_AVX512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "GGML_AVX512_VBMI": ("avx512vbmi",),
    "GGML_AVX512_VNNI": ("avx512_vnni",),
    "GGML_AVX512_BF16": ("avx512_bf16",),
}
# The portable fallback: x86-64-v3 (2013 and later), or less where the CPU lacks it.
PORTABLE_X86 = ("GGML_SSE42", "GGML_AVX", "GGML_AVX2", "GGML_BMI2", "GGML_FMA", "GGML_F16C")
NEVER_X86 = ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")


def log(message: str) -> None:
    print(f"[llama-build] {message}", file=sys.stderr, flush=True)


def pinned_version() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for requirement in data["project"]["dependencies"]:
        name, _, version = requirement.partition("==")
        if name.strip().lower() == PACKAGE:
            return version.strip()
    raise SystemExit(f"{PACKAGE} is not pinned with == in pyproject.toml")


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def cmake_options(profile: str) -> list[str]:
    """The -D options for `profile` ('native' or 'portable') on this machine."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        # No AMX elsewhere; ggml's native detection is what upstream ships.
        return ["-DGGML_NATIVE=OFF"] if profile == "portable" else ["-DGGML_NATIVE=ON"]
    flags = cpu_flags()
    wanted = X86_OPTIONS if profile == "native" else {k: X86_OPTIONS[k] for k in PORTABLE_X86}
    options = ["-DGGML_NATIVE=OFF"]
    for option in X86_OPTIONS:
        on = option in wanted and all(flag in flags for flag in X86_OPTIONS[option])
        options.append(f"-D{option}={'ON' if on else 'OFF'}")
    options += [f"-D{option}=OFF" for option in NEVER_X86]
    return options


def compiler_version() -> str:
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    try:
        out = subprocess.run(
            [compiler.split()[0], "--version"], capture_output=True, text=True, check=False
        )
        return out.stdout.splitlines()[0] if out.stdout else compiler
    except OSError:
        return compiler


def build_key(version: str, options: list[str]) -> str:
    material = json.dumps(
        [version, options, compiler_version(), platform.machine(), sys.version_info[:2]]
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def cache_root() -> Path:
    explicit = os.environ.get("BILLUMY_WHEEL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "billumy" / "wheels"


def record_path() -> Path:
    return Path(sys.prefix) / RECORD_NAME


def read_record() -> dict[str, object]:
    try:
        loaded = json.loads(record_path().read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def installed_version() -> str | None:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "show", "--disable-pip-version-check", PACKAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"^Version:\s*(\S+)", out.stdout, re.MULTILINE)
    return match.group(1) if match else None


def run_with_heartbeat(command: list[str], env: dict[str, str], logfile: Path) -> int:
    """Run a long build, its output to `logfile`, a progress line every 30 s on stderr."""
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(30):
            last = ""
            try:
                lines = logfile.read_text(errors="replace").splitlines()
                steps = [m for line in lines if (m := re.match(r"\s*(\[\s*\d+(?:%|/\d+)\])", line))]
                last = f"step {steps[-1].group(1)}" if steps else ""
            except OSError:
                pass
            log(f"  compiling llama.cpp ... {time.monotonic() - started:4.0f} s  {last}")

    thread = threading.Thread(target=heartbeat, daemon=True)
    thread.start()
    with logfile.open("w") as sink:
        code = subprocess.run(command, env=env, stdout=sink, stderr=subprocess.STDOUT).returncode
    done.set()
    return code


def build_wheel(version: str, options: list[str], target: Path) -> Path:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    env = dict(os.environ)
    env["CMAKE_ARGS"] = " ".join(options)
    env["CMAKE_BUILD_PARALLEL_LEVEL"] = env.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count()))
    logfile = partial / "build.log"
    log(f"building {PACKAGE}=={version} (about 5-10 minutes on two cores); log: {logfile}")
    command = [
        sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-deps",
        "--no-cache-dir", "--no-binary", PACKAGE, "-v", "-w", str(partial), f"{PACKAGE}=={version}",
    ]  # fmt: skip
    if run_with_heartbeat(command, env, logfile) != 0:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"{tail}\n[llama-build] the build failed; the whole log is {logfile}")
    wheels = list(partial.glob("llama_cpp_python-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"[llama-build] expected one wheel in {partial}, found {wheels}")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target / wheels[0].name


def install(profile: str, force: bool = False) -> None:
    version = pinned_version()
    options = cmake_options(profile)
    key = build_key(version, options)
    record = read_record()
    if not force and record.get("key") == key and installed_version() == version:
        log(f"{PACKAGE}=={version} already built for this CPU ({profile}, key {key})")
        return
    target = cache_root() / f"{PACKAGE}-{version}-{key}"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Two checkouts installing at once (a worktree beside the main one) share the cache: the
    # second waits for the first's build instead of wiping its half-built wheel and starting over.
    with (target.parent / f"{target.name}.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another install is building {target.name}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        wheels = list(target.glob("llama_cpp_python-*.whl"))
        if wheels:
            log(f"reusing the wheel built for these flags: {wheels[0]}")
            wheel = wheels[0]
        else:
            wheel = build_wheel(version, options, target)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
    )  # fmt: skip
    # llama-cpp-python's own dependencies (numpy, diskcache, jinja2, typing-extensions) come with
    # the project's install right after this.
    record_path().write_text(
        json.dumps(
            {
                "package": PACKAGE,
                "version": version,
                "profile": profile,
                "cmake_args": options,
                "key": key,
                "compiler": compiler_version(),
                "machine": platform.machine(),
                "selftest": None,
            },
            indent=2,
        )
        + "\n"
    )
    log(f"installed {wheel.name} ({profile}): CMAKE_ARGS={' '.join(options)}")


def run_selftest() -> int:
    """`billumy selftest`'s exit status (it runs the model in a child of its own)."""
    billumy = Path(sys.executable).with_name("billumy")
    return subprocess.run([str(billumy), "selftest"], check=False).returncode


def mark_selftest(passed: bool) -> None:
    record = read_record()
    record["selftest"] = "passed" if passed else "failed"
    record_path().write_text(json.dumps(record, indent=2) + "\n")


def selftest() -> None:
    record = read_record()
    if record.get("selftest") == "passed" and record.get("key") == build_key(
        pinned_version(), cmake_options(str(record.get("profile", "native")))
    ):
        log("self-test already passed for this build")
        return
    code = run_selftest()
    if code == 0:
        mark_selftest(True)
        return
    if record.get("profile") != "portable":
        log(
            f"the self-test failed (exit status {code}, reason above); rebuilding once with a "
            "portable set of CPU features (AVX2, no AVX-512, no AMX)"
        )
        install("portable", force=True)
        code = run_selftest()
        if code == 0:
            mark_selftest(True)
            return
    mark_selftest(False)
    raise SystemExit(
        "[llama-build] the model runtime does not run on this machine even with portable CPU "
        "features. Run `.venv/bin/billumy selftest` for the details and report it with "
        f"{record_path()}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("install", "selftest", "flags"))
    parser.add_argument("--profile", choices=("native", "portable"), default=None)
    args = parser.parse_args()
    if args.step == "flags":
        profile = args.profile or "native"
        options = cmake_options(profile)
        print(json.dumps({"profile": profile, "cmake_args": options,
                          "key": build_key(pinned_version(), options)}))  # fmt: skip
    elif args.step == "install":
        # Keep a portable build that an earlier self-test fell back to, unless asked otherwise.
        profile = args.profile or (
            "portable" if read_record().get("profile") == "portable" else "native"
        )
        install(profile)
    else:
        selftest()


if __name__ == "__main__":
    main()
