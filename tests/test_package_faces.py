"""Each package's public face: every exported name resolves, lazy faces import nothing until
used, and a lazy face's static imports (for type checkers) list exactly its exported names."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import gridpilot

PACKAGES = sorted(m.name for m in pkgutil.iter_modules(gridpilot.__path__, "gridpilot.") if m.ispkg)


def _lazy(name: str) -> bool:
    return hasattr(importlib.import_module(name), "_EXPORTS")


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves(name: str) -> None:
    mod = importlib.import_module(name)
    exported = getattr(mod, "__all__", None)
    assert exported, f"{name} declares no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    for attr in exported:
        assert getattr(mod, attr) is not None, f"{name}.{attr}"


@pytest.mark.parametrize("name", [p for p in PACKAGES if _lazy(p)])
def test_lazy_face_static_imports_match_its_exports(name: str) -> None:
    mod = importlib.import_module(name)
    tree = ast.parse(Path(mod.__file__ or "").read_text())
    static: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module, ast.dump(imp)
                sub = imp.module.removeprefix(name + ".")  # absolute for re-exports
                static.setdefault(sub, set()).update(a.name for a in imp.names)
    exports = {sub: set(names) for sub, names in mod._EXPORTS.items()}
    assert static == exports


@pytest.mark.parametrize("name", [p for p in PACKAGES if _lazy(p)])
def test_lazy_face_imports_no_submodule_until_a_name_is_used(name: str) -> None:
    code = (
        "import sys, importlib\n"
        f"m = importlib.import_module({name!r})\n"
        f"subs = [k for k in sys.modules if k.startswith({name!r} + '.')]\n"
        "assert not subs, subs\n"
        "sub, names = next(iter(m._EXPORTS.items()))\n"
        f"where = sub if sub.startswith('gridpilot.') else {name!r} + '.' + sub\n"
        "assert where not in sys.modules or not where.startswith(m.__name__), where\n"
        "getattr(m, names[0])\n"
        "assert where in sys.modules, where\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_unknown_name_is_an_attribute_error() -> None:
    import gridpilot.agent as agent

    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        agent.NoSuchThing  # noqa: B018


def test_a_public_name_wins_over_its_same_named_submodule() -> None:
    """``flex.aggregate`` is a function and a submodule: importing the submodule (as other
    modules do) must not turn the package's public name into the module."""
    code = (
        "import gridpilot.flex as f, gridpilot.forecast as fc\n"
        "from gridpilot.flex.aggregate import disaggregate\n"
        "import gridpilot.forecast.backtest\n"
        "from gridpilot.flex import aggregate\n"
        "from gridpilot.forecast import backtest\n"
        "import types\n"
        "assert callable(aggregate) and not isinstance(aggregate, types.ModuleType), aggregate\n"
        "assert callable(backtest) and not isinstance(backtest, types.ModuleType), backtest\n"
        "assert f.aggregate is aggregate and fc.backtest is backtest\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
