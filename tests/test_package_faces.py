"""Each package's public face, as httpx tests its exported members: every package exports
exactly the names below (what users need: documented entry points and names other packages,
the CLI or bench/ import from the package; helpers stay importable from their modules), every
exported name resolves and has a docstring, lazy faces import nothing until used, and a lazy
face's static imports (for type checkers) list exactly its exported names."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import gridpilot

PACKAGES = sorted(
    m.name for m in pkgutil.walk_packages(gridpilot.__path__, "gridpilot.") if m.ispkg
)

# The exported names of each package. A change here is a change of the public API: add a name
# only when users need it from the package (docs/, README.md, other packages, the CLI, bench/).
# fmt: off
EXPORTED: dict[str, set[str]] = {
    "agent": {
        "Action", "AuditLog", "Context", "FieldWorld", "FlexDR", "FlexPlanPolicy", "FlisrPolicy",
        "FrequencyPolicy", "GridEnv", "GuardLimits", "Observation", "Orchestrator", "Plan",
        "Policy", "RenewableDropPolicy", "SafetyGuard", "ScenarioSpec", "SimWorld",
        "ThreePhaseWorld", "VoltagePolicy", "demo_grid", "n1_sweep", "run_one", "run_realtime",
        "run_scenario",
    },
    "api": {
        "KeyStore", "LoopRunner", "create_app",
    },
    "api.routers": {
        "ROUTERS",
    },
    "control": {
        "Curve", "FlisrEngine", "FlisrResult", "Indications", "Limits", "ReconfigResult",
        "SwitchAction", "VOLT_VAR_CAT_B", "VOLT_WATT_CAT_B", "compare", "indications_for_fault",
        "locate", "optimise_q", "reconfigure", "run_curves", "tap_control",
    },
    "control.flisr": {
        "FlisrEngine", "FlisrResult", "Limits", "SwitchAction", "branch_status_all",
        "indications_for_fault",
    },
    "control.flisr3p": {
        "Flisr3pEngine", "Flisr3pResult", "Indications3p",
    },
    "estimation": {
        "EstimationResult", "FdiDetector", "Measurements", "PowerSensorKind", "RobustEstimate",
        "StateEstimator", "TheftDetector", "calibrate_threshold", "estimate_robust",
        "feeder_balance", "measurements_from_meters", "measurements_from_powerflow",
        "threshold_baseline",
    },
    "estimation.unbalanced": {
        "Case", "RobustEstimate", "SensorSpec", "TruthOptions", "UnbalancedEstimator",
        "UnobservableError", "build_linear_network", "build_measurements", "build_network",
        "default_cases", "detectability", "estimate_robust", "estimator_for", "run_case",
        "state_errors", "true_state",
    },
    "field": {
        "Command", "DeviceFleet", "FieldCommandReceiver", "FieldEvent", "FieldSimulator",
        "FieldTelemetry", "FleetConfig", "fault_indications", "reported_pickups",
    },
    "flex": {
        "AheadPlan", "Batteries", "EVSessions", "Event", "EventPlan", "Fleet", "NetworkModel",
        "OptOut", "PVInverters", "PhaseFleet", "PhasePlanConfig", "PlaceConfig", "Plan",
        "PlanConfig", "Program", "Signals", "WaterHeaters", "aggregate", "build_network",
        "clear_by_phase", "default_signals", "disaggregate", "disaggregate_q", "dispatch_event",
        "envelope", "event_setpoints", "feeder_phases", "fleet_from_field", "fleet_from_records",
        "frequency_response", "generate_fleet", "phase_headroom", "place_fleet", "plan",
        "plan_ahead", "plan_phases", "plan_window", "schedule_setpoints", "select_devices",
        "shed_potential", "shed_potential_by_bus",
    },
    "forecast": {
        "BacktestResult", "DEFAULT_QUANTILES", "EnsembleForecaster", "ForecastInputDataset",
        "ForecastResult", "Forecaster", "GBMForecaster", "History", "LinearForecaster", "MODELS",
        "PVForecaster", "SeasonalNaive", "TimeOfDayLinearForecaster", "backtest", "clearsky_ghi",
        "day_ahead", "make_model", "prepare_history",
    },
    "market": {
        "ClearingResult", "GridSensitivity", "KeyPair", "Ledger", "LedgerBackend", "Market",
        "MarketConfig", "MeterReading", "Order", "Participant", "Transaction", "clear",
        "readings_from_registers", "verified_at_ingest", "verify_signature",
    },
    "model": {
        "ElementType", "FlexKind", "GenKind", "Grid", "OperatingLimits", "Profiles", "SwitchKind",
        "Table", "branch_edges", "branch_status", "default_profiles", "from_matpower",
        "from_pandapower", "grid_series", "list_grids", "load_balanced_grid", "load_grid",
        "read_grid", "require_balanced", "write_grid",
    },
    "model.importers": {
        "from_matpower", "from_pandapower",
    },
    "model.threephase": {
        "Branch", "CapControl", "Capacitor", "Curve", "Fuse", "InverterControl", "InverterRating",
        "Load", "LoadShape", "RegControl", "Shunt", "Source", "Terminal", "ThreePhaseGrid",
        "Transformer", "Winding", "branch_yprim", "capacitor_yprim", "source_yprim", "transformer_yprim",
        "voltvar_curve", "voltwatt_curve",
    },
    "protocols": {
        "AdapterRegistry", "CommandResult", "DeviceCommand", "ProtocolAdapter", "ReadingSink",
    },
    "protocols.ocpp": {
        "Csms", "CsmsConfig", "OcppAdapter", "RunOptions", "StationModel", "StationSpec",
        "run_station",
    },
    "protocols.openadr": {
        "DrPublisher", "PROGRAM_NAME", "Vtn", "load_clients", "openadr_for", "openadr_router",
    },
    "protocols.sunspec": {
        "Der", "DerHost", "DerSpec", "SunSpecAdapter", "SunSpecClient", "SunSpecError",
    },
    "telemetry": {
        "DeviceRegistry", "DeviceSigner", "DuckDBStore", "InProcessBus", "Ingestor",
        "MqttTransport", "PostgresStore", "QUANTITIES", "QUANTITY_BY_NAME", "ReadingBatch",
        "Receiver", "RefusalLimits", "RejectReason", "TelemetryStore", "Topics", "Transport",
        "Verifier", "connect", "decode_readings", "encode_batch", "generate_key",
        "keys_from_seeds", "open_store", "open_transport", "wire_text",
    },
    "twin": {
        "Injections", "PowerFlowResult", "TimeSeriesResult", "Twin", "buses_lost_if_open", "energised",
        "is_radial", "islands", "meshes", "profiles_for", "step_injections", "supply_tree",
        "to_pgm",
    },
    "twin.hosting": {
        "HostingOptions", "Scenario", "clear_sky_pv", "critical_scenarios", "hosting_capacity",
        "hosting_capacity_on",
    },
    "twin.unbalanced": {
        "Fault", "SolveOptions", "SwitchedResult", "SwitchingSolver", "UnbalancedResult",
        "UnbalancedTwin", "fault_study", "normalise_ties", "solve_switched", "unbalance_factor",
    },
}
# fmt: on


def _lazy(name: str) -> bool:
    return hasattr(importlib.import_module(name), "_EXPORTS")


def test_every_package_has_its_exported_set() -> None:
    assert sorted(EXPORTED) == [p.removeprefix("gridpilot.") for p in PACKAGES]


@pytest.mark.parametrize("name", PACKAGES)
def test_exports_exactly_the_public_names(name: str) -> None:
    mod = importlib.import_module(name)
    exported = set(mod.__all__)
    expected = EXPORTED[name.removeprefix("gridpilot.")]
    assert exported == expected, (
        f"{name}: exported but not listed {sorted(exported - expected)}, "
        f"listed but not exported {sorted(expected - exported)}"
    )
    if _lazy(name):
        assert sorted(dir(mod)) == sorted(expected)


def _assignment_documented(module: str, name: str) -> bool:
    """Whether ``name`` is assigned at module level in ``module`` (or the module it imports
    the name from) and followed by a string literal, its attribute docstring."""
    tree = ast.parse(Path(importlib.import_module(module).__file__ or "").read_text())
    for i, node in enumerate(tree.body):
        imported = isinstance(node, ast.ImportFrom) and node.module
        if imported and any((a.asname or a.name) == name for a in node.names):
            return _assignment_documented(str(node.module), name)
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            nxt = tree.body[i + 1] if i + 1 < len(tree.body) else None
            return (
                isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
                and bool(nxt.value.value.strip())
            )
    return False


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_has_a_docstring(name: str) -> None:
    """A class or function has its own docstring in its source (not one inherited, nor the
    signature a dataclass fills in); a constant has an attribute docstring after it."""
    mod = importlib.import_module(name)
    where = {
        attr: sub if sub.startswith("gridpilot.") else f"{name}.{sub}"
        for sub, attrs in getattr(mod, "_EXPORTS", {}).items()
        for attr in attrs
    }
    missing = []
    for attr in mod.__all__:
        obj = getattr(mod, attr)
        if inspect.isclass(obj) or inspect.isroutine(obj):
            node = ast.parse(textwrap.dedent(inspect.getsource(obj))).body[0]
            assert isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            documented = bool((ast.get_docstring(node) or "").strip())
        else:
            documented = _assignment_documented(where.get(attr, name), attr)
        if not documented:
            missing.append(attr)
    assert not missing, f"{name}: exported names without a docstring: {missing}"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves(name: str) -> None:
    mod = importlib.import_module(name)
    exported = getattr(mod, "__all__", None)
    assert exported, f"{name} declares no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    for attr in exported:
        assert getattr(mod, attr) is not None, f"{name}.{attr}"


@pytest.mark.parametrize("name", [p for p in PACKAGES if _lazy(p)])
def test_lazy_face_static_imports_match_its_exports(name: str) -> None:
    mod = importlib.import_module(name)
    tree = ast.parse(Path(mod.__file__ or "").read_text())
    static: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module, ast.dump(imp)
                sub = imp.module.removeprefix(name + ".")  # absolute for re-exports
                static.setdefault(sub, set()).update(a.name for a in imp.names)
    exports = {sub: set(names) for sub, names in mod._EXPORTS.items()}
    assert static == exports


@pytest.mark.parametrize("name", [p for p in PACKAGES if _lazy(p)])
def test_lazy_face_imports_no_submodule_until_a_name_is_used(name: str) -> None:
    code = (
        "import sys, importlib\n"
        f"m = importlib.import_module({name!r})\n"
        f"subs = [k for k in sys.modules if k.startswith({name!r} + '.')]\n"
        "assert not subs, subs\n"
        "sub, names = next(iter(m._EXPORTS.items()))\n"
        f"where = sub if sub.startswith('gridpilot.') else {name!r} + '.' + sub\n"
        "assert where not in sys.modules or not where.startswith(m.__name__), where\n"
        "getattr(m, names[0])\n"
        "assert where in sys.modules, where\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_unknown_name_is_an_attribute_error() -> None:
    import gridpilot.agent as agent

    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        agent.NoSuchThing  # noqa: B018


def test_a_public_name_wins_over_its_same_named_submodule() -> None:
    """``flex.aggregate`` is a function and a submodule: importing the submodule (as other
    modules do) must not turn the package's public name into the module."""
    code = (
        "import gridpilot.flex as f, gridpilot.forecast as fc\n"
        "from gridpilot.flex.aggregate import disaggregate\n"
        "import gridpilot.forecast.backtest\n"
        "from gridpilot.flex import aggregate\n"
        "from gridpilot.forecast import backtest\n"
        "import types\n"
        "assert callable(aggregate) and not isinstance(aggregate, types.ModuleType), aggregate\n"
        "assert callable(backtest) and not isinstance(backtest, types.ModuleType), backtest\n"
        "assert f.aggregate is aggregate and fc.backtest is backtest\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
