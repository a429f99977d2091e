"""Kafka at the edge: the cluster id and bootstrap servers, the worker's tuned clients, topic creation, producing
records in batches, reading a topic, the consumed-record shape, making the client's log readable, and the clients'
TLS and SASL settings."""

from streams.kafka.admin import TopicError, ensure_topics, topic_specs
from streams.kafka.cluster import bootstrap_servers, cluster_id
from streams.kafka.producer import DEFAULT_MAX_RECORD_BYTES, Emission, SendQueue, Sent, produce, send
from streams.kafka.records import ConsumedRecord, InputRecord, now_ms
from streams.kafka.security import KafkaSecurity

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "ConsumedRecord",
    "Emission",
    "InputRecord",
    "KafkaSecurity",
    "SendQueue",
    "Sent",
    "TopicError",
    "bootstrap_servers",
    "cluster_id",
    "ensure_topics",
    "now_ms",
    "produce",
    "send",
    "topic_specs",
]
