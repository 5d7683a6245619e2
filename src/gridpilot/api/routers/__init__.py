"""The API's routers, one per area, mounted by :func:`gridpilot.api.app.create_app` with
``include_router``: pages, state, commands, dr, flex, market, audit, admin, feeder."""

from gridpilot.api.routers import admin, audit, commands, dr, feeder, flex, market, pages, state

ROUTERS = (
    pages.router,
    state.router,
    commands.router,
    dr.router,
    flex.router,
    market.router,
    audit.router,
    admin.router,
    feeder.router,
)
"""Every area's router, in the order :func:`~gridpilot.api.app.create_app` mounts them."""

__all__ = ["ROUTERS"]
