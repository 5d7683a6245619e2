"""House rule (issue #15): no function in src/ is over 80 lines unless the line just above its
``def`` (or above its decorators) is a comment ``# long: <reason>``, and no module is over 600
lines unless its first line is such a comment."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 80
MAX_MODULE_LINES = 600


def _long_functions_without_reason(root: Path) -> list[str]:
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines), filename=str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length <= MAX_LINES:
                continue
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            above = lines[first - 2] if first >= 2 else ""
            if not _is_reason(above):
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


def _is_reason(line: str) -> bool:
    line = line.strip()
    return line.startswith("# long:") and bool(line[len("# long:") :].strip())


def _long_modules_without_reason(root: Path) -> list[str]:
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > MAX_MODULE_LINES and not (lines and _is_reason(lines[0])):
            found.append(f"{path.relative_to(root)} ({len(lines)} lines)")
    return found


def test_no_module_over_600_lines_without_a_reason() -> None:
    offenders = _long_modules_without_reason(SRC)
    assert not offenders, "modules over 600 lines without '# long: <reason>' on line 1:\n" + (
        "\n".join(offenders)
    )


def test_the_module_scan_catches_a_long_module(tmp_path: Path) -> None:
    body = "\n".join(f"x{i} = {i}" for i in range(MAX_MODULE_LINES + 1))
    (tmp_path / "m.py").write_text(body + "\n", encoding="utf-8")
    assert _long_modules_without_reason(tmp_path) == ["m.py (601 lines)"]
    (tmp_path / "m.py").write_text("# long: generated table\n" + body + "\n", encoding="utf-8")
    assert _long_modules_without_reason(tmp_path) == []


def test_no_function_over_80_lines_without_a_reason() -> None:
    offenders = _long_functions_without_reason(SRC)
    assert not offenders, "functions over 80 lines without '# long: <reason>' above:\n" + "\n".join(
        offenders
    )


def test_the_scan_catches_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"def f() -> None:\n{body}\n", encoding="utf-8")
    assert _long_functions_without_reason(tmp_path) == ["m.py:1 f (81 lines)"]
    (tmp_path / "m.py").write_text(
        f"# long: a reason\n@staticmethod\ndef f() -> None:\n{body}\n", encoding="utf-8"
    )
    assert _long_functions_without_reason(tmp_path) == []
    (tmp_path / "m.py").write_text(f"# long:\ndef f() -> None:\n{body}\n", encoding="utf-8")
    assert len(_long_functions_without_reason(tmp_path)) == 1
