"""Import an OpenDSS master file into a :class:`ThreePhaseGrid`.

OpenDSS itself (DSS C-API through ``dss-python``, BSD) reads the DSS language: redirects,
compile, New/Edit, ``Like``, buscoords, loadshapes from files, voltage bases. We then read
every element's resolved properties (``Circuit.ToJSON``) and its conductor-to-node map, and
build our typed model from them. Element types we do not model are listed in one warning
(``grid.warnings`` and the log), never silently dropped. An error in the script (a missing
redirect, an unknown element type, a singular impedance) is a :class:`ValidationError`
naming the file, the line and the element.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model.importers.opendss_elements import build_elements
from gridpilot.model.threephase.grid import ThreePhaseGrid

log = logging.getLogger(__name__)

# OpenDSS writes non-finite numbers as bare tokens in several spellings (NaN, Nan, -nan, Inf,
# Infinity; an unset field holds uninitialised memory, so the spelling and sign vary from run to
# run): all become JSON null
_NONFINITE = re.compile(r"(?<![\w\"])[-+]?(?i:nan|inf(?:inity)?)(?![\w\"])")


_CONTROLS = {"regcontrol", "capcontrol", "fuse", "recloser", "relay", "swtcontrol", "energymeter",
             "monitor", "sensor", "invcontrol", "storagecontroller", "expcontrol", "upfccontrol",
             "gencontrol", "esppvcontrol"}  # fmt: skip


class DssSession:
    """A private OpenDSS context holding one compiled circuit (used by importer and bench)."""

    def __init__(self) -> None:
        try:
            import dss
        except ImportError as exc:  # pragma: no cover - dss-python is a dependency
            raise ValidationError(
                "reading OpenDSS files needs dss-python (pip install dss-python)"
            ) from exc
        self.ctx = dss.DSS.NewContext()
        self.ctx.AllowForms = False
        with contextlib.suppress(AttributeError):  # older dss-python has no editor flag
            self.ctx.AllowEditor = False

    def command(self, text: str) -> None:
        """Run one DSS command; engine errors become :class:`ValidationError`."""
        self.ctx.Text.Command = text

    def compile(self, path: Path) -> None:
        """``compile`` the master file; the working directory is restored afterwards."""
        cwd = os.getcwd()
        try:
            self.ctx.Text.Command = "clear"
            self.ctx.Text.Command = f'compile "{path}"'
        except Exception as exc:
            raise ValidationError(f"{path}: {_dss_message(exc)}") from None
        finally:
            os.chdir(cwd)
        if self.ctx.NumCircuits == 0 or self.ctx.ActiveCircuit.NumCktElements == 0:
            raise ValidationError(f"{path}: the script defines no circuit (no 'New Circuit.')")
        try:  # the conductor-to-node maps need one solve (without control actions)
            self.ctx.ActiveCircuit.Solution.SolveNoControl()
        except Exception as exc:
            msg = _dss_message(exc)
            m = re.search(r'for (\w+) "([^"]+)"', msg)
            where = locate(path, f"{m.group(1)}.{m.group(2)}") if m else ""
            raise ValidationError(f"{where or path}: {msg}") from None

    @property
    def circuit(self) -> Any:
        """The active OpenDSS circuit object."""
        return self.ctx.ActiveCircuit


_INCLUDE = re.compile(r"^\s*(redirect|compile)\s+(\"[^\"]+\"|\S+)", re.IGNORECASE)


def locate(master: Path, element: str) -> str:
    """``file:line`` where ``New element`` is written: the master, then the files it
    redirects to or compiles, in the order OpenDSS reads them (not the rest of the folder:
    a master in a shared folder would be credited with another script's element)."""
    cls, _, name = element.partition(".")
    pat = re.compile(
        rf"\bnew\s+(object\s*=\s*)?{re.escape(cls)}\.{re.escape(name)}(\s|$)", re.IGNORECASE
    )
    return _find(Path(master), pat, set())


def _find(f: Path, pat: re.Pattern[str], seen: set[Path]) -> str:
    """The first line matching ``pat`` in ``f`` or in a file it includes, where it does."""
    f = f.resolve()
    if f in seen or not f.is_file():
        return ""
    seen.add(f)
    with f.open(errors="replace") as fh:
        for i, line in enumerate(fh, 1):
            if pat.search(line):
                return f"{f}:{i}"
            inc = _INCLUDE.match(line)
            if inc:
                where = _find(f.parent / inc.group(2).strip('"'), pat, seen)
                if where:
                    return where
    return ""


def _dss_message(exc: Exception) -> str:
    """OpenDSS's message on one line: what, then ``[file: ..., line: ...]``."""
    args = exc.args
    text = str(args[1]) if len(args) > 1 else str(exc)
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def parse_dss_json(text: str) -> dict[str, Any]:
    """OpenDSS's JSON export as a dict, its non-finite numbers (``NaN``, ``-NaN``, ``Infinity``,
    ``-inf``) read as None."""
    clean = _NONFINITE.sub("null", text)
    try:
        data: dict[str, Any] = json.loads(clean)
    except json.JSONDecodeError as exc:
        near = clean[max(0, exc.pos - 60) : exc.pos + 40].replace("\n", " ")
        raise ValidationError(
            f"OpenDSS JSON export: unreadable at line {exc.lineno} column {exc.colno}: {near!r}"
        ) from None
    return data


def circuit_json(circuit: Any) -> dict[str, Any]:
    """Every element's resolved properties, by class (OpenDSS's full JSON export)."""
    return parse_dss_json(circuit.ToJSON(1))


def node_orders(circuit: Any) -> dict[str, list[list[int]]]:
    """``class.name`` (lower case) → per terminal, the node of each conductor."""
    out: dict[str, list[list[int]]] = {}
    for name in circuit.AllElementNames:
        circuit.SetActiveElement(name)
        el = circuit.ActiveCktElement
        if name.split(".", 1)[0].lower() in _CONTROLS:
            continue
        nt, nc = el.NumTerminals, el.NumConductors
        if not el.Enabled:
            continue  # disabled: OpenDSS has no node map; the importer reads the bus spec
        order = list(el.NodeOrder)
        terms = [order[i * nc : (i + 1) * nc] for i in range(nt)]
        opened = [bool(el.IsOpen(i + 1, 0)) for i in range(nt)]
        out[name.lower()] = terms
        out[name.lower() + "#open"] = [[int(any(opened))]]
    return out


def vbus_nodes(circuit: Any, data: dict[str, Any]) -> dict[str, list[list[int]]]:
    """``bus:name`` → the bus's nodes in OpenDSS's reference order (``AllNodeNames``'s, not
    sorted), for each CapControl VBus (a bus OpenDSS does not know is left out)."""
    wanted = {str(e.get("VBus") or "").lower() for e in data.get("CapControl") or []} - {""}
    out: dict[str, list[list[int]]] = {}
    if not wanted:
        return out
    for node in circuit.AllNodeNames:
        bus, _, k = node.lower().rpartition(".")
        if bus in wanted:
            out.setdefault(f"bus:{bus}", [[]])[0].append(int(k))
    return out


def reactor_yprims(circuit: Any, data: dict[str, Any]) -> dict[str, np.ndarray]:
    """``reactor.name`` → OpenDSS's primitive Y (S) of each enabled reactor (the importer
    stamps the shunt ones as they are)."""
    out: dict[str, np.ndarray] = {}
    on = [e for e in data.get("Reactor") or [] if e.get("Enabled", True)]
    if on:  # the primitive Ys are (re)built with the system Y (no solve, no voltages)
        circuit.Solution.BuildYMatrix(2, True)
    for e in on:
        key = f"reactor.{e['Name'].lower()}"
        circuit.SetActiveElement(key)
        y = np.asarray(circuit.ActiveCktElement.Yprim, float)
        n = round(math.sqrt(y.size // 2))
        out[key] = (y[0::2] + 1j * y[1::2]).reshape(n, n)
    return out


def loadshapes(circuit: Any) -> dict[str, dict[str, Any]]:
    """Every loadshape's multipliers, times and interval (hours)."""
    ls = circuit.LoadShapes
    out: dict[str, dict[str, Any]] = {}
    for name in ls.AllNames:
        ls.Name = name
        p = np.asarray(ls.Pmult, float)
        q = np.asarray(ls.Qmult, float)
        out[name.lower()] = {
            "mult": p,
            "qmult": q if len(q) == len(p) and len(p) > 1 else None,
            "hours": np.asarray(ls.TimeArray, float),
            "interval_h": float(ls.HrInterval),
        }
    return out


def from_opendss(path: str | Path, name: str | None = None) -> ThreePhaseGrid:
    """Read an OpenDSS master file (and everything it redirects to) into a validated grid.

    Returns a :class:`ThreePhaseGrid`; raises :class:`ValidationError` naming the file,
    line and element for a script OpenDSS refuses or an element our model refuses.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValidationError(f"OpenDSS master file {str(path)!r} does not exist")
    sess = DssSession()
    sess.compile(p.resolve())
    return grid_from_session(sess, name or p.stem, source=str(p))


def grid_from_session(sess: DssSession, name: str, source: str = "") -> ThreePhaseGrid:
    """Build the grid from an already compiled OpenDSS session."""
    c = sess.circuit
    data = circuit_json(c)
    orders = node_orders(c)
    orders.update(vbus_nodes(c, data))
    grid = build_elements(name, data, orders, loadshapes(c), source, reactor_yprims(c, data))
    grid.meta["opendss_circuit"] = c.Name
    grid.meta["source_file"] = source
    if grid.warnings:
        log.warning("%s: %s", name, "; ".join(grid.warnings))
    try:
        grid.validate()
    except ValidationError as exc:
        lines = [_where(source, i.component) + str(i) for i in exc.issues[:10]]
        msg = f"{source or name}: invalid input:\n  " + "\n  ".join(lines)
        raise ValidationError(msg, exc.issues) from None
    return grid


def _where(source: str, component: str) -> str:
    """``file:line: `` of an element's definition, when it can be found."""
    if not source or "." not in component:
        return ""
    loc = locate(Path(source), component)
    return f"{loc}: " if loc else ""
