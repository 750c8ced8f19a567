"""llama.cpp is built for the CPU it runs on, without the AMX kernels that crash here, and the
installed build is the one the record describes (scripts/llama_build.py, run by make install)."""

from __future__ import annotations

import importlib.util
import json
import platform
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from billumy.engines.selftest import SelfTestResult, build_record
from billumy.engines.supervisor import exit_reason

ROOT = Path(__file__).resolve().parents[2]
X86 = platform.machine().lower() in ("x86_64", "amd64")


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llama_build", ROOT / "scripts/llama_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not X86, reason="the CPU feature options are x86's")
def test_native_options_follow_the_cpu_and_never_turn_on_amx() -> None:
    build = load_script()
    flags = build.cpu_flags()
    options = build.cmake_options("native")
    assert "-DGGML_NATIVE=OFF" in options  # -march=native would turn AMX back on
    for amx in ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16"):
        assert f"-D{amx}=OFF" in options
    assert not any("AMX" in o and o.endswith("=ON") for o in options)
    for option, needs in build.X86_OPTIONS.items():
        on = all(flag in flags for flag in needs)
        assert f"-D{option}={'ON' if on else 'OFF'}" in options


@pytest.mark.skipif(not X86, reason="the CPU feature options are x86's")
def test_the_portable_build_leaves_out_avx512_and_has_its_own_cache_key() -> None:
    build = load_script()
    portable = build.cmake_options("portable")
    assert "-DGGML_AVX512=OFF" in portable and "-DGGML_AVX512_VNNI=OFF" in portable
    version = build.pinned_version()
    native = build.cmake_options("native")
    # On a CPU without AVX-512 the two builds are the same build, and share their key.
    assert (build.build_key(version, portable) != build.build_key(version, native)) is (
        portable != native
    )
    # The key changes with the flags, so a wheel built for other CPU features is not reused.
    assert build.build_key(version, [*portable, "-DGGML_AVX512=ON"]) != build.build_key(
        version, portable
    )


def test_the_installed_runtime_is_the_recorded_build_without_amx() -> None:
    record = build_record()
    if not record:
        pytest.skip("llama-cpp-python was not installed by scripts/llama_build.py here")
    build = load_script()
    assert record["version"] == build.pinned_version()
    assert record["cmake_args"] == build.cmake_options(record["profile"])
    assert record["selftest"] == "passed"
    # In a child: the test process itself never loads llama.cpp.
    out = subprocess.run(
        [sys.executable, "-c", "import llama_cpp; print(llama_cpp.llama_print_system_info())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "AMX_INT8 = 1" not in out


def test_selftest_passes_and_says_so() -> None:
    billumy = Path(sys.executable).with_name("billumy")
    done = subprocess.run(
        [str(billumy), "selftest"], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "selftest passed" in done.stderr
    assert "prompt tokens" in done.stderr


def test_selftest_names_the_signal_and_what_to_do() -> None:
    assert exit_reason(-4) == "SIGILL" and exit_reason(-11) == "SIGSEGV"
    assert exit_reason(3) == "exit code 3"
    crashed = SelfTestResult(False, "SIGILL", {}, 0.5)
    assert "make install" in crashed.advice and "AMX" in crashed.advice
    assert "memory" in SelfTestResult(False, "SIGKILL", {}, 0.5).advice


def test_a_selftest_child_that_fails_is_reported_not_raised(tmp_path: Path) -> None:
    from billumy.engines import selftest

    missing = tmp_path / "missing.gguf"
    result = selftest.run(missing, timeout_s=120)
    assert not result.ok and result.reason == "exit code 1"
    assert "missing.gguf" in json.dumps(result.detail)


def _record_in(tmp_path: Path, build: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Path:
    record = tmp_path / "billumy-llama-build.json"
    record.write_text(json.dumps({"profile": "native", "key": "k", "selftest": None}))
    monkeypatch.setattr(build, "record_path", lambda: record)
    return record


def test_a_failed_selftest_rebuilds_once_with_portable_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The steps' decisions, with the build and the child replaced (the real ones run above
    # and in make install): a first run killed by SIGILL, a second that passes.
    build = load_script()
    record = _record_in(tmp_path, build, monkeypatch)
    outcomes = iter([-4, 0])
    installs: list[tuple[str, bool]] = []
    monkeypatch.setattr(build, "run_selftest", lambda: next(outcomes))

    def install(profile: str, force: bool = False) -> None:
        installs.append((profile, force))
        record.write_text(json.dumps({"profile": profile, "key": "p", "selftest": None}))

    monkeypatch.setattr(build, "install", install)
    build.selftest()
    assert installs == [("portable", True)]
    assert json.loads(record.read_text()) == {
        "profile": "portable",
        "key": "p",
        "selftest": "passed",
    }


def test_a_selftest_that_fails_even_portable_gives_up_saying_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = load_script()
    record = _record_in(tmp_path, build, monkeypatch)
    monkeypatch.setattr(build, "run_selftest", lambda: -11)
    monkeypatch.setattr(build, "install", lambda profile, force=False: None)
    with pytest.raises(SystemExit) as stopped:
        build.selftest()
    assert "even with portable CPU features" in str(stopped.value)
    assert json.loads(record.read_text())["selftest"] == "failed"
