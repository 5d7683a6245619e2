"""The API: FastAPI with OpenAPI, API keys with roles, audited commands, a WebSocket state stream
and the control-room dashboard (one static page, plotly.js from the installed plotly package).

>>> from gridpilot.agent import Orchestrator, SimWorld, demo_grid
>>> from gridpilot.api import KeyStore, create_app
>>> keys = KeyStore.generate()                 # keys.issued["viewer"|"operator"|"admin"]
>>> app = create_app(Orchestrator(SimWorld(demo_grid())), keys)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridpilot._lazy import lazy_exports

# public names by submodule; imported on first use (see gridpilot/_lazy.py)
_EXPORTS: dict[str, tuple[str, ...]] = {
    "gridpilot.agent.auth": ("KeyStore",),
    "app": ("LoopRunner", "create_app"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from gridpilot.agent.auth import KeyStore
    from gridpilot.api.app import LoopRunner, create_app
