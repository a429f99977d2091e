"""The broker's cluster id; run ids are uuid5 over "<cluster id>:<topic>:<partition>:<offset>", unique per broker.

Real Kafka reports the id it was formatted with; the embedded Tansu broker the `--cluster-id` it was started with
(a fresh one at every start, so a new in-memory broker never reuses an old run id).
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient


def bootstrap_servers(broker: str) -> list[str]:
    """`host:port` entries of a broker URL: "kafka://h1:9092,h2:9092", "kafka://h1:9092;kafka://h2:9092" or "h:9092"."""
    servers: list[str] = []
    for part in broker.replace(";", ",").split(","):
        entry = part.strip()
        if "://" in entry:
            entry = entry.split("://", 1)[1]
        entry = entry.rstrip("/")
        if entry:
            servers.append(entry)
    if not servers:
        raise ValueError(f"no broker address in {broker!r}")
    return servers


async def cluster_id(bootstrap: str, *, timeout_s: float = 10.0) -> str:
    """The cluster id the broker at `bootstrap` reports in a DescribeCluster request (Kafka 2.8+ and Tansu)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(bootstrap), request_timeout_ms=int(timeout_s * 1000)
    )
    await admin.start()
    try:
        described = await admin.describe_cluster()
    finally:
        await admin.close()
    found = described.get("cluster_id")
    if not found:
        raise RuntimeError(f"the broker at {bootstrap} reports no cluster id")
    return str(found)
