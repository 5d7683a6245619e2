"""Waiting for a call's answer without losing a cancellation (both sides of the link).

The ``ocpp`` library's ``ChargePoint.call`` waits for its ``CALLRESULT`` with
``asyncio.wait_for(queue.get(), timeout)``. On Python 3.11 ``wait_for`` *returns the answer
instead of raising* ``CancelledError`` when its task is cancelled in the same event-loop
iteration in which the answer arrives (CPython gh-86296, fixed in 3.12 where ``wait_for`` is
built on ``asyncio.timeout``). A station cancelled while its ``MeterValues`` answer comes in then
goes on metering for ever, and whoever awaits it hangs: a host stopping its stations, the
deadline of :func:`~gridpilot.protocols.ocpp.station.run_station`. On a busy host more events
land in one iteration, so it happens in a few percent of cancellations.

:class:`ResponseWait` (mixed in before the library's ``ChargePoint``) waits on the queue itself
under ``asyncio.timeout``, which delivers the cancellation; the answer then stays unread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


class ResponseWait:
    """``_get_specific_response`` of ``ocpp.ChargePoint``, cancellation-safe on Python 3.11."""

    id: str
    _response_queue: asyncio.Queue[Any]

    async def _get_specific_response(self, unique_id: str, timeout: float) -> Any:
        """The answer to call ``unique_id`` (others are dropped); ``TimeoutError`` after
        ``timeout`` seconds; a cancellation is never swallowed."""
        async with asyncio.timeout(timeout):
            while True:
                response = await self._response_queue.get()
                if response.unique_id == unique_id:
                    return response
                log.warning(
                    "ocpp %s: dropped an answer to an unknown call (%s)",
                    self.id,
                    str(response.unique_id)[:36],
                )
