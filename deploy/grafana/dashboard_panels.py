"""The panels of the dashboard "IA Modules: pipelines", row by row (build_dashboard.py puts them together; panel
ids are given there).

Every query filters on the `job` and `instance` variables (and `pipeline` where the metric has that label), every
range is `$__rate_interval`, and every aggregation is a `sum by (...)` (min/max for gauges where a sum means
nothing), so that the series of `worker --processes N`, which carry a `process` label, add up.
"""

from __future__ import annotations

from panel_kinds import (
    NOT_OK,
    PIPELINE,
    SUCCESS,
    TAKEN,
    WORKER,
    Panel,
    listing,
    quantile,
    quantiles,
    rate,
    series,
    single,
)


def overview() -> list[Panel]:
    runs = f"sum({rate('ia_runs_total')})"
    return [
        single(
            "Runs/s", "Runs finished and durable per second, failed or not (ia_runs_total).", "ops", [(runs, "runs")]
        ),
        single(
            "Success ratio",
            "Share of the finished runs that succeeded (ia_runs_total, status=success); no value while no run "
            "finishes.",
            "percentunit",
            [(f"sum({rate('ia_runs_total', SUCCESS)}) / ({runs} > 0)", "success")],
            [(None, "red"), (0.95, "orange"), (0.99, "green")],
            no_value="no runs",
        ),
        single(
            "Dead letters/s",
            "Dead letters produced per second, of every kind (ia_dead_letters_total).",
            "ops",
            [(f"sum({rate('ia_dead_letters_total')})", "dead letters")],
            [(None, "green"), (1e-9, "red")],
        ),
        single(
            "End-to-end p99",
            "99th percentile of the input record's Kafka timestamp to its result durable, all selected pipelines "
            "(ia_end_to_end_latency_seconds).",
            "s",
            [(quantile(0.99, "ia_end_to_end_latency_seconds"), "p99")],
            no_value="no runs",
        ),
        single(
            "Workers up",
            "Scrape targets Prometheus reaches (up; one per machine, whatever --processes is) and worker "
            "processes reporting (ia_build_info, one per process).",
            "short",
            [(f"sum(up{{{WORKER}}})", "targets up"), (f"count(ia_build_info{{{WORKER}}})", "worker processes")],
            [(None, "red"), (1, "green")],
        ),
        single(
            "Consumer lag",
            "Records behind the high watermarks, summed over every topic and partition of the selected workers "
            "and pipelines (ia_consumer_lag).",
            "short",
            [(f"sum(ia_consumer_lag{{{PIPELINE}}})", "lag")],
            [(None, "green"), (1000, "orange"), (10000, "red")],
        ),
    ]


def throughput() -> list[Panel]:
    return [
        series(
            "In: records consumed per topic",
            "Records consumed per second, per topic (ia_events_consumed_total). Input topics carry the events that "
            "start runs; stage topics carry envelopes between stages, so one run counts once per topic it crosses.",
            "ops",
            [(f"sum by (topic) ({rate('ia_events_consumed_total')})", "{{topic}}")],
        ),
        series(
            "Out: runs finished per pipeline",
            "Runs finished and durable per second, per pipeline and status (ia_runs_total).",
            "ops",
            [(f"sum by (pipeline, status) ({rate('ia_runs_total')})", "{{pipeline}} {{status}}")],
        ),
    ]


def latency() -> list[Panel]:
    return [
        series(
            "End-to-end latency",
            "p50, p95 and p99 per pipeline of the input record's Kafka timestamp to the result durable "
            "(ia_end_to_end_latency_seconds); replays are not counted.",
            "s",
            quantiles("ia_end_to_end_latency_seconds", "pipeline"),
        ),
        series(
            "Run duration",
            "p50, p95 and p99 per pipeline of the first consume of the input record to the result durable "
            "(ia_run_duration_seconds).",
            "s",
            quantiles("ia_run_duration_seconds", "pipeline"),
        ),
    ]


def steps() -> list[Panel]:
    by = "pipeline, step"
    return [
        series(
            "Step duration p50",
            "Median duration of one step's run, all attempts (ia_step_duration_seconds).",
            "s",
            quantiles("ia_step_duration_seconds", by, qs=[0.5]),
        ),
        series(
            "Step duration p99",
            "99th percentile of one step's run, all attempts (ia_step_duration_seconds).",
            "s",
            quantiles("ia_step_duration_seconds", by, qs=[0.99]),
        ),
        series(
            "Step failures and skips",
            "Steps failed or skipped per second (ia_step_runs_total); a skip is a step none of whose paths was taken.",
            "ops",
            [
                (
                    f"sum by (pipeline, step, status) ({rate('ia_step_runs_total', NOT_OK)})",
                    "{{pipeline}} {{step}} {{status}}",
                )
            ],
            width=8,
        ),
        series(
            "Step retries",
            "Retried attempts per second (ia_step_retries_total).",
            "ops",
            [(f"sum by (pipeline, step) ({rate('ia_step_retries_total')})", "{{pipeline}} {{step}}")],
            width=8,
        ),
        series(
            "Joins waiting and timing out",
            "Joins holding some but not all of their paths' tokens (ia_joins_waiting), and joins that waited past "
            "stream.join_timeout_s, per second (ia_join_timeouts_total).",
            "short",
            [
                (f"sum by (pipeline, step) (ia_joins_waiting{{{PIPELINE}}})", "{{pipeline}} {{step}} waiting"),
                (f"sum by (pipeline, step) ({rate('ia_join_timeouts_total')})", "{{pipeline}} {{step}} timeouts/s"),
            ],
            width=8,
        ),
    ]


def routes() -> list[Panel]:
    edge = "pipeline, from, to"
    taken = f"sum by ({edge}) ({rate('ia_route_total', TAKEN)})"
    return [
        series(
            "Route split per edge",
            "Paths evaluated per second after a step ran, per edge and outcome (ia_route_total); `to` is a step, "
            "end or end_with_failure.",
            "ops",
            [(f"sum by ({edge}, taken) ({rate('ia_route_total')})", "{{pipeline}} {{from}} → {{to}} taken={{taken}}")],
        ),
        series(
            "Share taken per edge",
            "Of the evaluations of each path, the share whose condition held (ia_route_total, taken=true).",
            "percentunit",
            [(f"{taken} / (sum by ({edge}) ({rate('ia_route_total')}) > 0)", "{{pipeline}} {{from}} → {{to}}")],
        ),
    ]


def dead_letters() -> list[Panel]:
    return [
        series(
            "Dead letters by kind",
            "Dead letters produced per second, per pipeline, kind and step to blame (ia_dead_letters_total); the "
            "step is empty when no step is to blame. `ia-modules dlq list` shows them.",
            "ops",
            [(f"sum by (pipeline, kind, step) ({rate('ia_dead_letters_total')})", "{{pipeline}} {{kind}} {{step}}")],
        ),
        series(
            "Internal errors",
            "Records the runtime itself failed on, per second (ia_internal_errors_total); each is also an "
            "internal_error dead letter.",
            "ops",
            [(f"sum by (pipeline) ({rate('ia_internal_errors_total')})", "{{pipeline}}")],
        ),
    ]


def consumer() -> list[Panel]:
    per_process = "instance, process"
    return [
        series(
            "Lag per topic",
            "High watermark minus the workers' position, per topic (ia_consumer_lag).",
            "short",
            [(f"sum by (topic) (ia_consumer_lag{{{PIPELINE}}})", "{{topic}}")],
        ),
        series(
            "Lag per partition",
            "High watermark minus the worker's position, per topic and partition (ia_consumer_lag).",
            "short",
            [(f"sum by (topic, partition) (ia_consumer_lag{{{PIPELINE}}})", "{{topic}} [{{partition}}]")],
        ),
        series(
            "Assigned partitions",
            "Partitions assigned to each worker process (ia_assigned_partitions).",
            "short",
            [(f"sum by ({per_process}) (ia_assigned_partitions{{{WORKER}}})", "{{instance}} {{process}}")],
            width=8,
        ),
        series(
            "Rebalances",
            "Partition assignments received per worker process, per rate interval (ia_rebalances_total).",
            "short",
            [
                (
                    f"sum by ({per_process}) (increase(ia_rebalances_total{{{WORKER}}}[$__rate_interval]))",
                    "{{instance}} {{process}}",
                )
            ],
            width=8,
        ),
        series(
            "Batch size",
            "Records per fetched batch, p50 and p99 (ia_batch_records).",
            "short",
            quantiles("ia_batch_records", labels=WORKER, qs=[0.5, 0.99]),
            width=8,
        ),
        series(
            "Batch duration",
            "Running one fetched batch's records, p50 and p99 (ia_batch_duration_seconds).",
            "s",
            quantiles("ia_batch_duration_seconds", labels=WORKER, qs=[0.5, 0.99]),
            width=8,
        ),
        series(
            "Produce latency",
            "A batch's records handed to the producer to the broker's acknowledgement of all of them, p50 and p99 "
            "(ia_produce_latency_seconds).",
            "s",
            quantiles("ia_produce_latency_seconds", labels=WORKER, qs=[0.5, 0.99]),
            width=8,
        ),
        series(
            "Commit duration",
            "One offset commit, p50 and p99 (ia_commit_duration_seconds).",
            "s",
            quantiles("ia_commit_duration_seconds", labels=WORKER, qs=[0.5, 0.99]),
            width=8,
        ),
    ]


def sink() -> list[Panel]:
    per_process = "instance, process, sink"
    last = f"max by ({per_process}) (ia_sink_last_success_timestamp_seconds{{{WORKER}}})"
    return [
        series(
            "Sink rows",
            "Rows of the results sink per second, per table and status (ia_sink_rows_total): written, or refused by "
            "the database (each refused run row becomes an internal_error dead letter).",
            "ops",
            [(f"sum by (sink, table, status) ({rate('ia_sink_rows_total', WORKER)})", "{{sink}} {{table}} {{status}}")],
        ),
        series(
            "Sink flush p99",
            "99th percentile of one write of a batch's rows (ia_sink_flush_seconds).",
            "s",
            quantiles("ia_sink_flush_seconds", "sink", WORKER, qs=[0.99]),
        ),
        series(
            "Sink up",
            "1 while the sink's last write succeeded, 0 while it fails, per worker process (ia_sink_up). A worker "
            "without a database has no sink series.",
            "short",
            [(f"min by ({per_process}) (ia_sink_up{{{WORKER}}})", "{{instance}} {{process}} {{sink}}")],
        ),
        series(
            "Sink last success age",
            "Seconds since each worker process's sink last wrote successfully "
            "(time() - ia_sink_last_success_timestamp_seconds; processes that never wrote are left out). Grows "
            "while no rows come in, too.",
            "s",
            [(f"time() - ({last} > 0)", "{{instance}} {{process}} {{sink}}")],
        ),
    ]


def processes() -> list[Panel]:
    per_process = "instance, process"
    legend = "{{instance}} {{process}}"
    return [
        series(
            "CPU",
            "CPU time per second of each process: 100% is one core (process_cpu_seconds_total). With --processes "
            "N, process is 1 to N and supervisor.",
            "percentunit",
            [(f"sum by ({per_process}) ({rate('process_cpu_seconds_total', WORKER)})", legend)],
            width=8,
        ),
        series(
            "Resident memory",
            "Resident set size of each process (process_resident_memory_bytes).",
            "bytes",
            [(f"sum by ({per_process}) (process_resident_memory_bytes{{{WORKER}}})", legend)],
            width=8,
        ),
        series(
            "Open file descriptors",
            "File descriptors each process holds open (process_open_fds).",
            "short",
            [(f"sum by ({per_process}) (process_open_fds{{{WORKER}}})", legend)],
            width=8,
        ),
        listing(
            "Releases running",
            "Worker processes per release and Python version (ia_build_info).",
            [(f"count by (version, python) (ia_build_info{{{WORKER}}})", "")],
            value="processes",
        ),
        listing(
            "Pipelines loaded",
            "Each loaded pipeline with its version and whether its steps are fused (ia_pipeline_info).",
            [(f"max by (pipeline, version, fuse) (ia_pipeline_info{{{PIPELINE}}})", "")],
        ),
    ]


def rows() -> list[tuple[str, bool, list[Panel]]]:
    """The dashboard's rows, top to bottom: (title, collapsed, panels). Collapsed rows query only once opened."""
    return [
        ("Overview", False, overview()),
        ("Throughput", False, throughput()),
        ("Latency", False, latency()),
        ("Dead letters", False, dead_letters()),
        ("Steps", True, steps()),
        ("Routes", True, routes()),
        ("Kafka consumer", True, consumer()),
        ("Results sink", True, sink()),
        ("Worker processes", True, processes()),
    ]
