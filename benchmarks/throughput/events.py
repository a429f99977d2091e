"""The events every variant is loaded with (synthetic ~1 KB feedback, or the shipped samples cycled) and the
constants all parts of the throughput benchmark share (paths, partitions, the variants)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.envelope import partition_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BENCH_PIPELINE = ROOT / "benchmarks" / "pipelines" / "bench_processing.json"
CUSTOM_PIPELINE = ROOT / "pipelines" / "custom_processing.json"
CUSTOM_EVENTS = ROOT / "pipelines" / "custom_processing.events.jsonl"
PARTITIONS = 4
EVENT_BYTES = 1000

VARIANTS: dict[str, str] = {
    "raw": "a. raw aiokafka chain",
    "faust": "b. Faust chain (3 agents)",
    "worker": "c. worker, bench pipeline",
    "worker-db": "c. worker + pipeline_runs sink",
    "floor": "e. raw chain, runner by hand",
    "raw-2p": "f. raw chain, 2 processes",
    "faust-2p": "f. Faust chain, 2 processes",
    "worker-2p": "f. worker --processes 2",
    "raw-uvloop": "g. raw chain on uvloop",
    "faust-uvloop": "g. Faust chain on uvloop",
    "worker-asyncio": "g. worker on asyncio's loop",
    "real-raw": "d. raw chain, real steps",
    "real-faust": "d. Faust chain, real steps",
    "real-worker": "d. worker, custom_processing",
}


_WORDS = (
    "the parcel arrived two days late but the support team answered within an hour and sent a replacement "
    "which fits well the colour matches the photos and the fabric feels sturdy enough for daily use I would "
    "order again although the tracking page never updated and the box was slightly crushed at one corner"
).split()


def _text(variant: int, length: int) -> str:
    words = _WORDS[variant % len(_WORDS) :] + _WORDS[: variant % len(_WORDS)]
    text = ""
    while len(text) < length:
        text += " ".join(words) + ". "
    return text[:length].rstrip() + "."


_TEXTS = [_text(i, 820) for i in range(97)]
_CHANNELS = ("app", "chat", "email", "web")


@dataclass(frozen=True)
class Record:
    key: bytes
    partition: int
    value: bytes


def keyed(event: dict[str, Any]) -> Record:
    """The record a publisher sends for ``event``: keyed by ``customer_id`` (the pipelines' ``stream.key``), on
    the partition the worker maps that key to, so the worker never forwards it."""
    key = str(event["customer_id"]).encode()
    return Record(key, partition_for(key, PARTITIONS), orjson.dumps(event))


def synthetic_events(count: int) -> list[Record]:
    """``count`` feedback-like events of about 1 KB, each with a unique ``seq``; 20,000 distinct keys."""
    records = []
    for seq in range(count):
        event = {
            "event_id": f"ev-{seq:08d}",
            "seq": seq,
            "customer_id": f"cust-{(seq * 7919) % 20_000:05d}",
            "channel": _CHANNELS[seq % len(_CHANNELS)],
            "locale": "en-GB",
            "submitted_at": "2024-06-02T09:07:00Z",
            "text": _TEXTS[seq % len(_TEXTS)],
        }
        records.append(keyed(event))
    return records


def sample_events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CUSTOM_EVENTS.read_text().splitlines() if line.strip()]


def real_events(count: int) -> list[Record]:
    """The shipped sample events cycled to ``count``: each gets a unique ``seq`` and ``event_id``, its
    ``customer_id`` a cycle suffix (66 samples would give too few keys to spread over 4 partitions), and a
    ``padding`` field (ignored by the steps) up to about 1 KB."""
    samples = sample_events()
    records = []
    for seq in range(count):
        cycle, sample = divmod(seq, len(samples))
        event = {
            **samples[sample],
            "seq": seq,
            "event_id": f"{samples[sample]['event_id']}-{cycle}",
            "customer_id": f"{samples[sample]['customer_id']}-{cycle % 64}",
        }
        size = len(orjson.dumps(event))
        if size < EVENT_BYTES - 20:
            event["padding"] = "x" * (EVENT_BYTES - 20 - size)
        records.append(keyed(event))
    return records
