"""gridpilot: an open-source brain for distribution grids."""

from gridpilot.errors import (
    AuthError,
    ConvergenceError,
    GridpilotError,
    InfeasibleError,
    Issue,
    UnknownComponentError,
    ValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "ConvergenceError",
    "GridpilotError",
    "InfeasibleError",
    "Issue",
    "UnknownComponentError",
    "ValidationError",
    "__version__",
]
