"""CLI: ``gridpilot market simulate``, ``gridpilot ledger verify|txs|proof|check-proof``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

DEFAULT_LEDGER = "gridpilot-ledger.sqlite"
OPERATOR_ENV = "GRIDPILOT_LEDGER_OPERATOR"


def _pinned_operator(option: str | None) -> tuple[bytes | None, str]:
    """The trusted operator public key and where it came from (``--operator``, else the
    ``GRIDPILOT_LEDGER_OPERATOR`` environment variable); ``(None, "")`` when neither is set.
    A malformed key ends the command with exit 2, naming the source and the value."""
    import os

    from gridpilot.errors import ValidationError
    from gridpilot.market.ledger_verify import parse_hash

    text, source = option, "--operator"
    if text is None:
        text, source = os.environ.get(OPERATOR_ENV) or None, f"${OPERATOR_ENV}"
    if text is None:
        return None, ""
    try:
        return parse_hash(text, source), source
    except ValidationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def write_plot(report: dict, path: Path) -> Path:
    """Write an HTML page with the simulation's energy per interval (traded, delivered,
    curtailed, exports, imports; kWh) and the mean local price (EUR/kWh); returns the path."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s = report["series"]
    x = [r["time"] for r in s]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.65, 0.35],
        subplot_titles=("energy per interval (kWh)", "local price (EUR/kWh)"),
    )
    for key in ("export_kwh", "import_kwh", "traded_kwh", "delivered_kwh", "curtailed_kwh"):
        fig.add_trace(
            go.Scatter(x=x, y=[r[key] for r in s], name=key.replace("_kwh", ""), mode="lines"), 1, 1
        )
    fig.add_trace(
        go.Scatter(x=x, y=[r["price_eur_per_kwh"] for r in s], name="price", mode="lines+markers"),
        2,
        1,
    )
    fig.update_layout(
        title=f"gridpilot market on {report['grid']}: {report['participants']} participants, "
        f"saved {report['money_saved_eur']:.2f} EUR vs grid only",
        height=700,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True)
    return path


def simulate_cmd(
    grid: str = typer.Argument("case33bw", help="built-in grid name, e.g. case33bw, synthetic:200"),
    participants: int = typer.Option(
        50, "--participants", "-n", help="number of prosumers/consumers"
    ),
    hours: float = typer.Option(24.0, "--hours", help="simulated hours (15-minute intervals)"),
    seed: int = typer.Option(0, "--seed"),
    pricing: str = typer.Option("uniform", "--pricing", help="uniform or pay_as_bid"),
    ledger_path: Path | None = typer.Option(
        None, "--ledger", help="SQLite ledger file to write (new file)"
    ),
    no_grid: bool = typer.Option(False, "--no-grid", help="skip the grid check"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    plot: Path | None = typer.Option(
        None, "--plot", help="write an HTML plot of prices and energy here"
    ),
) -> None:
    """Simulate a community market on GRID and report the community's benefit."""
    from gridpilot.errors import GridpilotError
    from gridpilot.market.market import MarketConfig
    from gridpilot.market.simulate import simulate

    try:
        rep = simulate(
            grid,
            participants,
            hours,
            seed,
            ledger_path,
            MarketConfig(pricing=pricing),
            grid_aware=not no_grid,
            progress=not as_json,
        )
    except GridpilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if plot is not None:
        write_plot(rep, plot)
    if as_json:
        typer.echo(json.dumps(rep, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"market on {grid}: {participants} participants, {hours:g} h")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k in (
        "orders",
        "trades",
        "traded_kwh",
        "curtailed_kwh",
        "delivered_kwh",
        "shortfall_kwh",
        "local_energy_share",
        "cost_grid_only_eur",
        "cost_with_market_eur",
        "money_saved_eur",
        "network_fees_eur",
        "thieves",
        "thieves_paid_eur",
        "refused_meter_readings",
        "clear_ms_mean",
    ):
        v = rep[k]
        t.add_row(k, f"{v:.3f}" if isinstance(v, float) else str(v))
    lg = rep["ledger"]
    t.add_row(
        "ledger",
        f"{lg['blocks']} blocks, {lg['txs']} txs, verify {'ok' if lg['verify_ok'] else 'FAILED'}",
    )
    Console().print(t)


def verify_cmd(
    path: Path = typer.Argument(..., help="SQLite ledger file"),
    operator: str | None = typer.Option(
        None,
        "--operator",
        help=f"the operator's public key (hex) from a trusted source; default ${OPERATOR_ENV}",
    ),
    no_signatures: bool = typer.Option(
        False, "--no-signatures", help="hashes, Merkle roots and links only"
    ),
    expect_head: str | None = typer.Option(
        None, "--expect-head", help="published head hash (catches truncation)"
    ),
    allow_empty: bool = typer.Option(
        False, "--allow-empty", help="accept a ledger with no blocks (else it may be wiped)"
    ),
    workers: int = typer.Option(1, "--workers", help="processes for signature checks"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check every block, read-only; exit 1 and name the first bad block on any tampering."""
    from gridpilot.errors import GridpilotError
    from gridpilot.market.ledger import Ledger

    key, source = _pinned_operator(operator)
    try:
        lg = Ledger.open(path)
        try:
            rep = lg.verify(
                workers=workers,
                check_signatures=not no_signatures,
                expect_head=expect_head,
                operator_key=key,
                allow_empty=allow_empty,
            )
        finally:
            lg.close()
    except (GridpilotError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # a file that is not a ledger at all
        typer.echo(
            f"error: {path} is not a readable ledger ({type(exc).__name__}: {exc})", err=True
        )
        raise typer.Exit(2) from None
    trust = f"operator {rep.operator[:16]}... pinned by {source}" if key else rep.trust
    if key is None:
        typer.echo(
            f"warning: no operator key pinned (--operator or ${OPERATOR_ENV}): checked "
            f"against the key stored in {path} itself, which shows only that the file is "
            "consistent, not who wrote it",
            err=True,
        )
    if as_json:
        typer.echo(json.dumps({**rep.to_dict(), "trust": trust}, indent=2))
    elif rep.ok:
        typer.echo(
            f"ok: {rep.blocks} blocks, {rep.txs} transactions, head {rep.head_hash} "
            f"({rep.seconds:.2f} s); trust: {trust}"
        )
    elif rep.first_bad_block is not None:
        typer.echo(f"TAMPERED: first bad block {rep.first_bad_block}: {rep.reason}")
    else:
        typer.echo(f"FAILED: {rep.reason}")
    if not rep.ok:
        raise typer.Exit(1)


def txs_cmd(
    path: Path = typer.Argument(..., help="SQLite ledger file"),
    kind: str | None = typer.Option(None, "--kind", help="only this kind, e.g. order"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List transaction hashes (height, index, kind, hash), read-only: the ids 'ledger
    proof' takes."""
    from gridpilot.errors import GridpilotError
    from gridpilot.market.ledger import TX_KINDS, Ledger

    if kind is not None and kind not in TX_KINDS:
        typer.echo(f"error: --kind {kind!r} unknown; known: {', '.join(TX_KINDS)}", err=True)
        raise typer.Exit(2)
    try:
        lg = Ledger.open(path)
        try:
            rows = list(lg.tx_hashes(kind))
        finally:
            lg.close()
    except GridpilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:
        typer.echo(
            f"error: {path} is not a readable ledger ({type(exc).__name__}: {exc})", err=True
        )
        raise typer.Exit(2) from None
    if as_json:
        keys = ("height", "index", "kind", "hash")
        docs = [dict(zip(keys, (h, i, k, x.hex()), strict=True)) for h, i, k, x in rows]
        typer.echo(json.dumps(docs, indent=2))
        return
    for h, i, k, x in rows:
        typer.echo(f"{h}\t{i}\t{k}\t{x.hex()}")


def proof_cmd(
    tx: str = typer.Argument(..., help="transaction hash (hex), see 'ledger txs'"),
    path: Path = typer.Option(Path(DEFAULT_LEDGER), "--ledger", help="SQLite ledger file"),
    out: Path | None = typer.Option(None, "--out", help="write the proof JSON here"),
) -> None:
    """Print (and check) the inclusion proof of transaction TX (read-only)."""
    from gridpilot.errors import GridpilotError
    from gridpilot.market.ledger import Ledger

    try:
        lg = Ledger.open(path)
        try:
            pr = lg.proof(tx.strip().lower())
            op = lg.operator_key
        finally:
            lg.close()
    except (GridpilotError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    doc = {**pr.to_dict(), "valid": pr.verify(op)}
    text = json.dumps(doc, indent=2)
    if out is not None:
        out.write_text(text)
    typer.echo(text)


def check_proof_cmd(
    proof: Path = typer.Argument(..., help="proof JSON written by 'ledger proof'"),
    operator: str | None = typer.Option(
        None,
        "--operator",
        help=f"the operator's public key (hex) from a trusted source; default ${OPERATOR_ENV}",
    ),
) -> None:
    """Check an inclusion proof alone, without the ledger; exit 1 naming what is wrong."""
    from gridpilot.market.ledger import InclusionProof

    key, source = _pinned_operator(operator)
    try:
        pr = InclusionProof.from_dict(json.loads(proof.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        typer.echo(f"error: cannot read proof {proof}: {exc}", err=True)
        raise typer.Exit(2) from None
    why = pr.check(key)
    where = f"tx {pr.tx_hash.hex()} in block {pr.header.height}"
    if why:
        typer.echo(f"INVALID: {where}: {why}")
        raise typer.Exit(1)
    if key is None:
        typer.echo(
            f"valid (consistent only): {where}, signed by key {pr.header.operator.hex()} "
            "taken from the proof itself: this proves nothing about who signed; pin the "
            f"operator with --operator or ${OPERATOR_ENV}"
        )
    else:
        typer.echo(f"valid: {where}, signed by the operator pinned by {source}")


def register(app: typer.Typer) -> None:
    """Attach the ``market`` and ``ledger`` sub-apps to the root app."""
    market = typer.Typer(help="The prosumer market.", no_args_is_help=True)
    ledger = typer.Typer(help="The market's signed, hash-chained ledger.", no_args_is_help=True)
    market.command("simulate")(simulate_cmd)
    ledger.command("verify")(verify_cmd)
    ledger.command("txs")(txs_cmd)
    ledger.command("proof")(proof_cmd)
    ledger.command("check-proof")(check_proof_cmd)
    app.add_typer(market, name="market")
    app.add_typer(ledger, name="ledger")
