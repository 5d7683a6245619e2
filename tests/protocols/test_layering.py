"""The layering rule of docs/architecture.md: nothing in the loop imports gridpilot.protocols,
not even inside a function; only the API's router and the root CLI (above it) do."""

from __future__ import annotations

import ast
from pathlib import Path

import gridpilot

SRC = Path(gridpilot.__file__).parent
LOOP = ("agent", "control", "estimation", "field", "flex", "forecast", "market", "model",
        "telemetry", "twin")  # fmt: skip
REGISTRATION = {"api/app.py", "cli.py"}


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_the_loop_does_not_import_protocols() -> None:
    bad = []
    for pkg in LOOP:
        for path in (SRC / pkg).rglob("*.py"):
            rel = path.relative_to(SRC).as_posix()
            if rel in REGISTRATION:
                continue
            if any(m == "gridpilot.protocols" or m.startswith("gridpilot.protocols.")
                   for m in _imports(path)):  # fmt: skip
                bad.append(rel)
    assert bad == []


def test_protocols_import_nothing_above_their_edge() -> None:
    allowed = ("gridpilot.protocols", "gridpilot.errors", "gridpilot._lazy", "gridpilot.telemetry",
               "gridpilot.field", "gridpilot.agent")  # fmt: skip
    bad = [(p.relative_to(SRC).as_posix(), m) for p in (SRC / "protocols").rglob("*.py")
           for m in _imports(p) if m.startswith("gridpilot") and not m.startswith(allowed)]  # fmt: skip
    assert bad == []
