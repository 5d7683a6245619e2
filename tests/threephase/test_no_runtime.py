"""The kernels compiled without numba's runtime (``**NO_RT``, see
:mod:`gridpilot.twin.unbalanced.arrays`) keep its rules: no allocation and no array
returned (a caller with the runtime would release a reference it was never given)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import gridpilot.twin.unbalanced as pkg

ALLOCATES = re.compile(
    r"np\.(empty|zeros|ones|full|array|copy|concatenate|linalg)\b|\.copy\(\)|\[[:, ]*\]\s*=[^=]"
)


def _no_runtime_kernels() -> list[tuple[str, ast.FunctionDef, str]]:
    found = []
    for path in sorted(Path(pkg.__file__).parent.glob("*.py")):
        src = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.FunctionDef) and any(
                "**NO_RT" in ast.unparse(d) for d in node.decorator_list
            ):
                found.append((path.name, node, ast.get_source_segment(src, node) or ""))
    return found


KERNELS = _no_runtime_kernels()


def test_the_step_loop_kernels_run_without_the_runtime() -> None:
    names = {n.name for _, n, _ in KERNELS}
    assert {"fixed_point", "schur_solve", "anderson", "sample_all", "record"} <= names


@pytest.mark.parametrize("where,node,src", KERNELS, ids=[f"{f}:{n.name}" for f, n, _ in KERNELS])
def test_a_kernel_without_the_runtime_neither_allocates_nor_returns_an_array(
    where: str, node: ast.FunctionDef, src: str
) -> None:
    body = src.split('"""')[-1] if src.count('"""') >= 2 else src  # code after the docstring
    assert not ALLOCATES.search(body), f"{where}: {node.name} allocates: {ALLOCATES.search(body)}"
    ret = ast.unparse(node.returns) if node.returns else ""
    assert "ndarray" not in ret, f"{where}: {node.name} returns an array ({ret})"
