"""Creating the topics a pipeline needs, with its partition count, before any worker consumes them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from streams.kafka.cluster import bootstrap_servers
from streams.kafka.security import PLAINTEXT, KafkaSecurity
from streams.topology import Topology

logger = logging.getLogger(__name__)


class TopicError(RuntimeError):
    """A pipeline's topics cannot be had as it needs them; the message names the topic and why."""


class TopicMismatchError(TopicError):
    """An existing topic has another partition count than its pipeline needs (which would break co-partitioning)."""


class TopicCreationError(TopicError):
    """The broker refused to create a topic (too few brokers for the replication factor, no permission, ...)."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(topology: Topology) -> list[TopicSpec]:
    """Every topic of a pipeline; the join changelog is compacted, as only the latest state of a join counts."""
    plain = [*topology.input_topics, *topology.stage_topics(), topology.output_topic, topology.dlq_topic]
    specs = [TopicSpec(name, topology.partitions) for name in plain]
    specs.append(TopicSpec(topology.joins_topic, topology.partitions, {"cleanup.policy": "compact"}))
    return specs


async def ensure_topics(
    broker: str, specs: list[TopicSpec], replication_factor: int = 1, *, security: KafkaSecurity = PLAINTEXT
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created. An existing topic with another
    partition count is an error naming it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker), **security.client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            new = [NewTopic(s.name, s.partitions, replication_factor, topic_configs=s.config) for s in missing]
            response = await admin.create_topics(new)  # refusals come back per topic, not raised
            for name, code, *message in response.topic_errors:
                if code not in (0, TopicAlreadyExistsError.errno):  # already there: another worker was first
                    error = for_code(code).__name__
                    reason = message[0] if message and message[0] else error
                    raise TopicCreationError(f"the broker refused to create topic '{name}' ({error}): {reason}")
        present = [spec for spec in specs if spec.name in existing]
        if present:
            described = await admin.describe_topics([spec.name for spec in present])
            counts = {t["topic"]: len(t["partitions"]) for t in described}
            for spec in present:
                if counts.get(spec.name, spec.partitions) != spec.partitions:
                    raise TopicMismatchError(
                        f"topic '{spec.name}' has {counts[spec.name]} partitions, its pipeline needs "
                        f"{spec.partitions}: all topics of a pipeline must have the same count"
                    )
        return [spec.name for spec in missing]
    finally:
        await admin.close()
