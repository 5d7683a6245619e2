"""The API: FastAPI with OpenAPI, API keys with roles, audited commands, a WebSocket state stream
and the control-room dashboard (one static page, plotly.js from the installed plotly package).

>>> from gridpilot.agent import Orchestrator, SimWorld, demo_grid
>>> from gridpilot.api import KeyStore, create_app
>>> keys = KeyStore.generate()                 # keys.issued["viewer"|"operator"|"admin"]
>>> app = create_app(Orchestrator(SimWorld(demo_grid())), keys)
"""

from gridpilot.agent.auth import ROLES, KeyStore
from gridpilot.api.app import LoopRunner, create_app
from gridpilot.api.layout import diagram_xy

__all__ = ["ROLES", "KeyStore", "LoopRunner", "create_app", "diagram_xy"]
