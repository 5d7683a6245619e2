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
    "gridpilot.api.cli",
    "gridpilot.twin.cli",
    "gridpilot.telemetry.cli",
    "gridpilot.market.cli",
    "gridpilot.forecast.cli",
    "gridpilot.field.cli",
    "gridpilot.flex.cli",
    "gridpilot.control.cli",
    "gridpilot.agent.flisr3p_run",
    "gridpilot.protocols.cli",
    "gridpilot.twin.hosting_cli",
    "gridpilot.control.cvr_cli",
    "gridpilot.estimation.cli",
)


@app.command()
def warmup() -> None:
    """Compile and cache the numba kernels now (``make`` runs this once after installing)."""
    import time

    from rich.console import Console

    from gridpilot.kernels import cold_modules, invalidate_stale_caches

    con = Console(stderr=True)
    invalidate_stale_caches()  # a kernel module changed: every cache goes (numba misses it)
    cold = cold_modules()
    t0 = time.perf_counter()
    with con.status(f"compiling {len(cold)} kernel module(s)…" if cold else "checking kernels…"):
        from gridpilot.control.flisr import FlisrEngine, Limits
        from gridpilot.model import load_balanced_grid
        from gridpilot.twin import Twin

        grid = load_balanced_grid("case33bw", "warmup")
        twin = Twin(grid)
        twin.powerflow()
        twin.timeseries(4)
        FlisrEngine(grid, Limits(0.9, 1.05, 100.0)).respond_to_faults([7])
        from gridpilot.model.threephase.builtin import ieee_feeder
        from gridpilot.twin.unbalanced.cli import qsts_summary

        qsts_summary(ieee_feeder("ieee13"), 4, "15min", show_progress=False)
        from gridpilot.twin.unbalanced import UnbalancedTwin

        UnbalancedTwin(ieee_feeder("ieee13")).powerflow()  # the sparse solves (trisolve)
    left = cold_modules()
    con.print(
        f"kernels ready in {time.perf_counter() - t0:.1f} s"
        + (f"; still not cached: {', '.join(left)}" if left else "")
    )
    if left:  # still usable, only slower on first use: a warning, not a failure
        con.print("[yellow]warning:[/] the modules above compile on their first use instead")


def _register() -> None:
    """Attach every package's commands to the root app."""
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)


def main() -> None:
    """Entry point of the ``gridpilot`` console script."""
    import sys

    _register()
    if len(sys.argv) > 1 and "--help" not in sys.argv:
        from gridpilot.kernels import command_kernels, compile_notice

        modules = command_kernels(sys.argv[1])  # only those the command may compile
        if modules:
            with compile_notice(modules):
                app()
            return
    app()
