"""Brute-force hosting capacity in OpenDSS itself, the reference of the tests and bench
(not the method): per node-phase, an OpenDSS generator (PV) or load (EV) of constant power
is raised in steps until a check breaks. OpenDSS's static controls settle the base case
and are then switched off, as in the study. The checked quantities are computed from
OpenDSS's node voltages with the feeder's primitive admittances (equal to OpenDSS's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model.importers.opendss import DssSession
from gridpilot.twin.hosting.checks import violations
from gridpilot.twin.hosting.feeder import Feeder, Measure
from gridpilot.twin.hosting.options import HostingOptions, Scenario
from gridpilot.twin.hosting.study import settle_base
from gridpilot.twin.unbalanced.reference import dss_taps, dss_voltages


class DssHosting:
    """An OpenDSS session of ``master`` set at a critical hour, with controls then frozen."""

    def __init__(self, master: Path, fd: Feeder, sc: Scenario, opts: HostingOptions) -> None:
        self.fd, self.sc, self.opts = fd, sc, opts
        self.s = DssSession()
        self.s.compile(master)
        for cmd in ("set tolerance=1e-10", "set maxiterations=500", "set maxcontroliter=100",
                    "set controlmode=static", f"set loadmult={sc.load_mult:.12g}"):  # fmt: skip
            self.s.command(cmd)
        self.s.circuit.Solution.Solve()
        self.s.command("set controlmode=off")
        settle_base(fd, sc)
        self._check_taps()
        self.base = self._measure()
        self.n_added = 0

    def _check_taps(self) -> None:
        """The feeder's twin must sit on OpenDSS's settled taps (its regulator flows are
        measured with them)."""
        ours = self.fd.twin.taps()
        for name, n in dss_taps(self.s).items():
            s = next(x for x in self.fd.twin.regs if x.ctl.name.lower() == name)
            w = self.fd.twin.grid.transformer(s.xf).windings[s.ctl.tap_winding - 1]
            if round((ours[name] - 1.0) / w.tap_step) != n:
                raise ValidationError(
                    f"regcontrol {name}: OpenDSS settled on tap {n}, the twin on "
                    f"{(ours[name] - 1.0) / w.tap_step:.0f}"
                )

    def _measure(self) -> Measure:
        ref = dss_voltages(self.s)
        v = np.array([ref[f"{b}.{k}"] for b, k in self.fd.twin.net.nodes])
        return self.fd.measure(v[:, None])

    def _flags(self, name: str, p_kw: float) -> int:
        d = self.sc.der_pu
        self.s.command(f"{name}.kw={p_kw * d:.9g}")
        self.s.circuit.Solution.Solve()
        full = self._measure()
        step = None
        if self.opts.der == "pv":
            self.s.command(f"{name}.kw={p_kw * d * self.opts.cloud_fraction:.9g}")
            self.s.circuit.Solution.Solve()
            step = self._measure()
        return int(violations(self.base, full, step, self.opts)[0])

    def node_hc_kw(self, bus: str, phase: int, coarse_kw: float = 100.0) -> float:
        """Largest passing rating (kW) at ``bus.phase``: steps of ``coarse_kw`` up to the
        first failure, then ``step_kw`` steps from the last pass."""
        self.n_added += 1
        kv = self.fd.twin.grid.bus_kv_ln[bus]
        cls = "generator" if self.opts.der == "pv" else "load"
        name = f"{cls}.hcref{self.n_added}"
        extra = "pf=1 model=1 vminpu=0.5 vmaxpu=1.5" + (" status=fixed" if cls == "load" else "")
        self.s.command(f"new {name} bus1={bus}.{phase} phases=1 kv={kv:.9g} kw=0 {extra}")
        try:
            return self._walk(name, coarse_kw)
        finally:
            self.s.command(f"{name}.enabled=no")

    def _walk(self, name: str, coarse_kw: float) -> float:
        st, top = self.opts.step_kw, self.opts.max_kw
        last = 0.0
        for step in (max(coarse_kw, st), st):
            p = last + step
            while p <= top + 1e-9:
                if self._flags(name, p):
                    break
                last = p
                p += step
        return last
