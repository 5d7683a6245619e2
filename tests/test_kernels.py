"""The CLI knows when numba's cache is cold, and says so instead of sitting silent."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from gridpilot import kernels

_KERNEL_SRC = """
from numba import njit


@njit(cache=True)
def twice(x):
    return 2 * x
"""


def _fake_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> str:
    """``fakepkg_<name>.<name>`` with one cached kernel: a package of its own per test."""
    pkg = tmp_path / f"fakepkg_{name}"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / f"{name}.py").write_text(_KERNEL_SRC)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("NUMBA_DISABLE_JIT", raising=False)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    return f"fakepkg_{name}.{name}"


def test_a_kernel_is_cold_until_its_first_call_writes_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    mod = _fake_module(tmp_path, monkeypatch, "kern")
    assert kernels.cold_modules([mod]) == [mod]
    assert importlib.import_module(mod).twice(21) == 42  # compiles and writes the cache
    assert kernels.cold_modules([mod]) == []


def test_unknown_modules_say_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _fake_module(tmp_path, monkeypatch, "kern2")
    assert kernels.cold_modules([mod + "_missing"]) == []
    monkeypatch.setenv("NUMBA_DISABLE_JIT", "1")
    assert kernels.cold_modules([mod]) == []


def test_compile_notice_prints_one_line_only_when_cold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = _fake_module(tmp_path, monkeypatch, "kern3")
    out = io.StringIO()
    with kernels.compile_notice([mod], stream=out) as cold:
        assert cold is True
    assert "compiling numba kernels" in out.getvalue()
    out = io.StringIO()
    with kernels.compile_notice([], stream=out) as cold:
        assert cold is False
    assert out.getvalue() == ""


def test_the_package_kernel_modules_hold_cached_kernels() -> None:
    """The list names real kernel modules: a kernel moved elsewhere must be listed again."""
    for name in kernels.KERNEL_MODULES:
        assert kernels._dispatchers(name), name


def test_warmup_leaves_every_kernel_module_cached() -> None:
    """``gridpilot warmup`` (run by make) reaches every kernel, so no first command compiles."""
    from typer.testing import CliRunner

    from gridpilot.cli import _register, app

    _register()
    res = CliRunner().invoke(app, ["warmup"])
    assert res.exit_code == 0, res.output
    assert "kernels ready" in res.output
    if os.environ.get("NUMBA_DISABLE_JIT"):
        pytest.skip("numba JIT disabled")
    assert kernels.cold_modules() == []


def test_discovery_finds_a_cached_kernel_module_and_skips_others(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "fast.py").write_text(_KERNEL_SRC)
    (tmp_path / "plain.py").write_text("def f():\n    return 1\n")
    (tmp_path / "nocache.py").write_text(
        "from numba import njit\n\n@njit\ndef g(x):\n    return x\n"
    )
    assert kernels.discover_kernel_modules(tmp_path, "pkg") == ("pkg.sub.fast",)


def test_each_command_asks_only_about_real_kernel_modules_it_needs() -> None:
    """Every module a command's notice checks is a kernel module; a balanced power flow
    does not check the unbalanced solver or FLISR, and a command without kernels none."""
    for cmd, mods in kernels.COMMAND_KERNELS.items():
        assert mods and set(mods) <= set(kernels.KERNEL_MODULES), cmd
    assert kernels.command_kernels("powerflow") == ("gridpilot.twin.radial_kernel",)
    assert not any("unbalanced" in m for m in kernels.command_kernels("flisr"))
    assert "gridpilot.control.flisr._kernels" in kernels.command_kernels("reconfigure")
    assert set(kernels.command_kernels("qsts")) == {
        "gridpilot.twin.unbalanced.loads",
        "gridpilot.twin.unbalanced.trisolve",
    }
    assert kernels.command_kernels("forecast") == ()


def test_a_changed_kernel_module_drops_every_cache(tmp_path) -> None:
    """numba checks only the source of the kernel it caches; a kernel compiled with kernels
    from another module keeps their old code. A changed kernel source drops all the caches."""
    from gridpilot.kernels import invalidate_stale_caches

    pkg = tmp_path / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    a, b = pkg / "step.py", pkg / "ctl.py"
    a.write_text("def run(): pass\n")
    b.write_text("def arm(): pass\n")
    stamp = pkg / "__pycache__" / "stamp"
    cached = [pkg / "__pycache__" / n for n in ("step.run-10.py311.nbi", "step.run-10.py311.1.nbc")]
    other = pkg / "__pycache__" / "unrelated.f-1.py311.nbi"
    for p in (*cached, other):
        p.write_bytes(b"x")
    assert invalidate_stale_caches([a, b], stamp)  # no stamp yet: caches of unknown age go
    assert not any(p.exists() for p in cached) and other.exists() and stamp.exists()
    for p in cached:
        p.write_bytes(b"x")
    assert not invalidate_stale_caches([a, b], stamp)  # nothing changed: kept
    assert all(p.exists() for p in cached)
    b.write_text("def arm(): return 1\n")  # the *called* module changes
    assert invalidate_stale_caches([a, b], stamp)
    assert not any(p.exists() for p in cached)


def test_the_compiled_qsts_checks_the_kernel_caches_once_per_process(monkeypatch) -> None:
    """A checkout updated in place changes only some kernel sources; the compiled QSTS step
    inlines kernels of other modules, so it asks for the stale-cache check before its first
    run, and only once."""
    import gridpilot.kernels as k
    from gridpilot.model import load_grid
    from gridpilot.twin.unbalanced import UnbalancedTwin

    calls: list[int] = []
    monkeypatch.setattr(k, "_CHECKED", [])
    monkeypatch.setattr(k, "invalidate_stale_caches", lambda: calls.append(1) or False)
    tw = UnbalancedTwin(load_grid("ieee13"))
    tw.qsts(2, 900.0)
    tw.qsts(2, 900.0)
    assert calls == [1]
