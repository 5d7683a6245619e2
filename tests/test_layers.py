"""No package imports one above it (docs/architecture.md): checked on every import statement in
src/, function-level and TYPE_CHECKING imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gridpilot"

# lowest first; a module may import its own package and packages of lower layers only
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors"}),
    frozenset({"lp", "_lazy", "tables", "kernels"}),
    frozenset({"model"}),
    frozenset({"twin", "telemetry", "forecast"}),
    frozenset({"estimation", "control", "field", "market"}),
    frozenset({"flex"}),
    frozenset({"agent"}),
    frozenset({"protocols"}),
    frozenset({"api"}),
    frozenset({"cli", "__init__"}),
    frozenset({"__main__"}),
)
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def _package(path: Path, src: Path) -> str:
    rel = path.relative_to(src).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, gridpilot package) for each absolute import of a gridpilot package in ``path``."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "gridpilot":
                names = [f"gridpilot.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        out += [(node.lineno, n.split(".")[1]) for n in names if n.startswith("gridpilot.")]
    return out


def violations(src: Path = SRC) -> list[str]:
    """Every import of a package from a package not above it, as 'file:line: a -> b'."""
    bad: list[str] = []
    for path in sorted(src.rglob("*.py")):
        pkg = _package(path, src)
        assert pkg in LAYER_OF, f"{pkg} (from {path}) has no layer: add it to LAYERS and the docs"
        for line, target in _imports(path):
            if target == pkg:
                continue
            assert target in LAYER_OF, f"{path}:{line} imports unknown package {target}"
            if LAYER_OF[target] >= LAYER_OF[pkg]:
                bad.append(f"{path.relative_to(src)}:{line}: {pkg} -> {target}")
    return bad


def test_no_package_imports_one_above_or_beside_it() -> None:
    assert violations() == []


def test_the_check_sees_an_upward_function_level_import(tmp_path: Path) -> None:
    pkg = tmp_path / "gridpilot" / "twin"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("def f():\n    from gridpilot.agent import Orchestrator\n")
    (pkg / "y.py").write_text("from gridpilot.model import load_grid\n")
    assert violations(tmp_path / "gridpilot") == ["twin/x.py:2: twin -> agent"]


@pytest.mark.parametrize(
    "name", sorted(p.name for p in SRC.iterdir() if p.is_dir() and p.name != "__pycache__")
)
def test_every_package_is_documented_in_the_architecture(name: str) -> None:
    doc = (SRC.parents[1] / "docs" / "architecture.md").read_text()
    assert f"{name}/" in doc, f"docs/architecture.md does not describe {name}/"
