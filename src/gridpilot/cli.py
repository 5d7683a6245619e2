"""gridpilot's one command-line interface (Typer).

Each package contributes its commands from a small ``*_cli`` module registered below; heavy
imports happen inside the commands so that ``gridpilot --help`` stays fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="gridpilot",
    help="gridpilot: digital twin, self-healing, forecasting, flexibility and market for distribution grids.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# Each module here defines ``register(app: typer.Typer) -> None``. Add yours to the tuple.
_COMMAND_MODULES: tuple[str, ...] = (
    "gridpilot.agent.cli",
    "gridpilot.twin.cli",
    "gridpilot.telemetry.cli",
    "gridpilot.market.cli",
    "gridpilot.forecast.cli",
    "gridpilot.field.cli",
    "gridpilot.flex.cli",
    "gridpilot.control.cli",
    "gridpilot.twin.hosting_cli",
    "gridpilot.control.cvr_cli",
)


def _register() -> None:
    """Attach every package's commands to the root app."""
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)


def main() -> None:
    """Entry point of the ``gridpilot`` console script."""
    _register()
    app()
