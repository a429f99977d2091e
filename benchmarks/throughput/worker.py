"""The launcher of ``ia-modules worker`` on a pipeline, in a working directory of its own, with or without
its results database, under cProfile if asked, with the ``--worker-env`` settings."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from benchmarks.throughput.events import BIN
from benchmarks.throughput.launch import Launch, clean_env, result_seq
from ia_modules.pipeline.loader import load_plan
from streams.embedded.broker import free_port
from streams.kafka.admin import topic_specs
from streams.topology import build_topology

WORKER_ENV: dict[str, str] = {}
"""Settings given to every worker variant (``--worker-env``), to compare tunings."""


def worker_launch(
    broker: str,
    tag: str,
    work: Path,
    pipeline: Path,
    profile: Path | None,
    database: bool,
    processes: int = 1,
    event_loop: str = "auto",
    extra_env: Mapping[str, str] | None = None,
) -> Launch:
    """``ia-modules worker`` on ``pipeline`` with topics prefixed ``tag``, in ``work``; ``extra_env`` is applied
    last (after ``WORKER_ENV``)."""
    pipelines_dir = work / "pipelines"
    pipelines_dir.mkdir()
    # The worker's Faust app keeps its data in .ia/faust and creates only the last level of it: without .ia in
    # the working directory its start fails and /health never answers (reported; the embedded broker makes .ia).
    (work / ".ia").mkdir()
    shutil.copy(pipeline, pipelines_dir / pipeline.name)
    app_id = f"{tag}-app"
    topology = build_topology(load_plan(pipeline), tag, app_id)
    port = free_port()
    env = clean_env(IA_BROKER=f"kafka://{broker}", IA_TOPIC_PREFIX=tag, IA_APP_ID=app_id,
                    IA_PIPELINES_DIR=str(pipelines_dir), IA_WEB_PORT=str(port), IA_SESSION_TIMEOUT_MS="2000",
                    IA_LOG_LEVEL="WARNING")  # fmt: skip
    env["IA_EVENT_LOOP"] = event_loop
    env.update(WORKER_ENV)
    env.update(extra_env or {})
    if not database:
        env["IA_DATABASE_URL"] = "none"
    command = [str(BIN / "ia-modules"), "worker", "--processes", str(processes)]
    if profile is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command]
    return Launch(command, env, work, topology.input_topics[0], topology.output_topic, topic_specs(topology),
                  result_seq, health_port=port)  # fmt: skip
