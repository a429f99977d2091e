"""A pause after a failed metadata update of an aiokafka client.

aiokafka updates metadata again as soon as anything asks, and with the broker down and a partition's leader
unknown its producer's sender asks again the moment an update fails: the worker then spins a core and logs
thousands of "Unable to update metadata" errors a second for as long as the broker is away (the fetcher has a
twin of this loop, aio-libs/aiokafka#1155). Waiting the client's retry backoff after a failed update bounds that
to a few attempts a second; a successful update is not delayed.
"""

from __future__ import annotations

import asyncio
from typing import Any


def pause_after_failed_metadata_updates(client: Any, backoff_s: float) -> None:
    """Make ``client`` (an ``AIOKafkaClient``) wait ``backoff_s`` after each metadata update that failed."""
    update = client._metadata_update  # what its metadata task calls for every update

    async def paused(cluster_metadata: Any, topics: Any) -> Any:
        updated = await update(cluster_metadata, topics)
        if not updated:
            await asyncio.sleep(backoff_s)
        return updated

    client._metadata_update = paused
