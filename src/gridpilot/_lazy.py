"""Lazy package faces (PEP 562): ``from gridpilot.agent import Orchestrator`` works as before,
but importing the package imports no submodule until one of its names is used.

The CLI registers every package's commands at start-up; with eager ``__init__`` files that
pulled in the whole orchestrator, market and forecasting stacks (about a second) just to print
``--help``. Each lazy package lists its names once per submodule and repeats them as plain
imports under ``TYPE_CHECKING`` for type checkers; ``tests/test_package_faces.py`` keeps the
two in step and resolves every name.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any


class _LazyFace(types.ModuleType):
    """A lazy package whose public names win over same-named submodules, as in an eager face:
    importing ``gridpilot.flex.aggregate`` (the module) must not rebind the package's public
    ``aggregate`` (the function), which the import system otherwise does on first import."""

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            isinstance(value, types.ModuleType)
            and value.__name__ == f"{self.__name__}.{name}"
            and name in self.__dict__.get("__all__", ())
        ):
            return  # the submodule stays reachable through sys.modules and import statements
        super().__setattr__(name, value)


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` whose public names live in the
    submodules named by ``exports`` (submodule relative to the package, or an absolute
    ``gridpilot.`` module for a name re-exported from another package -> its names)."""
    where = {
        name: sub if sub.startswith("gridpilot.") else f"{package}.{sub}"
        for sub, names in exports.items()
        for name in names
    }
    public = sorted(where)
    face = sys.modules.get(package)
    if face is not None and type(face) is types.ModuleType:
        face.__class__ = _LazyFace

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        importlib.import_module(package).__dict__[name] = value  # later look-ups skip this
        return value

    def __dir__() -> list[str]:
        return public

    return __getattr__, __dir__, public
