"""``Step.logger``, as every version of the original IA Modules had it: a ``logging.Logger`` named
``<module of the step's class>.<step id>``, usable in ``__init__`` and ``run``; in a run (in-process or streamed)
its records carry the run id as ``record.run_id`` and at the head of the message, so the worker's log format
(``%(asctime)s %(levelname)s %(name)s: %(message)s``) shows it."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import orjson
import pytest

from ia_modules.pipeline.core import Pipeline, Step
from tests.unit.test_stage_runner import InMemoryTopics

MODULE = __name__
WORKER_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # streams/cli/stream_commands.py


class GreeterStep(Step):
    """Written as the guide's steps are: ``super().__init__(name, config)`` first, then its own setup."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.greeting = self.config.get("greeting", "hello")
        self.logger.info("ready to greet with %r", self.greeting)

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        self.logger.info("greeting %s", data["who"])
        await asyncio.sleep(0)  # concurrent runs interleave here
        self.logger.warning("%d%% done for %s", 100, data["who"])
        return {"text": f"{self.greeting} {data['who']}"}


class ShouterStep(Step):
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        self.logger.info("shouting")
        return {"loud": data["text"].upper()}


class EagerStep(Step):
    """Logs before calling ``super().__init__``."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        self.logger.info("setting up")
        super().__init__(name, config)

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        self.logger.info("running")
        return {}


def two_steps() -> Pipeline:
    return Pipeline.from_dict(
        {
            "name": "Greeting",
            "steps": [
                {"id": "greeter", "step_class": "GreeterStep", "module": MODULE, "config": {"greeting": "hi"}},
                {"id": "shouter", "step_class": "ShouterStep", "module": MODULE},
            ],
            "flow": {"start_at": "greeter", "paths": [{"from": "greeter", "to": "shouter"}]},
        }
    )


def run_of(record: logging.LogRecord) -> Any:
    """The run id the step's logger put on ``record`` (``"unset"`` if it put none)."""
    return record.__dict__.get("run_id", "unset")


def step_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(f"{MODULE}.")]


@pytest.fixture(autouse=True)
def capture_steps(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=MODULE)


# -- the logger ------------------------------------------------------------------------------------------------------


def test_the_logger_is_a_logger_named_after_the_module_of_the_class_and_the_step_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    step = GreeterStep("welcome", {"greeting": "hey"})
    assert isinstance(step.logger, logging.Logger)
    assert step.logger.name == f"{MODULE}.welcome"
    assert step.logger is logging.getLogger(f"{MODULE}.welcome")
    assert GreeterStep("other").logger.name == f"{MODULE}.other", "two steps of one class log apart"
    [record, _] = step_records(caplog)
    assert record.name == f"{MODULE}.welcome"
    assert record.getMessage() == "ready to greet with 'hey'", "outside a run the message is as written"
    assert run_of(record) is None


def test_a_step_can_log_before_super_init_and_then_logs_under_its_id(caplog: pytest.LogCaptureFixture) -> None:
    step = EagerStep("eager")
    assert [r.name for r in step_records(caplog)] == [f"{MODULE}.EagerStep"]
    assert step.logger.name == f"{MODULE}.eager"


def test_a_step_may_set_its_own_logger() -> None:
    step = ShouterStep("s")
    mine = logging.getLogger("my.own")
    step.logger = mine
    assert step.logger is mine


async def test_work_outside_a_pipeline_logs_without_a_run_id(caplog: pytest.LogCaptureFixture) -> None:
    assert await ShouterStep("alone").work({"text": "a"}) == {"loud": "A"}
    [record] = step_records(caplog)
    assert record.getMessage() == "shouting" and run_of(record) is None


# -- in a run --------------------------------------------------------------------------------------------------------


def setup_records(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    """What ``GreeterStep.__init__`` logged: the step is made once at load (its config checked) and once for
    the services of its runs."""
    return [r for r in records if r.getMessage() == "ready to greet with 'hi'"]


async def test_an_in_process_run_puts_its_run_id_on_every_record_of_its_steps(caplog: pytest.LogCaptureFixture) -> None:
    pipeline = two_steps()
    result = await pipeline.run({"who": "ann"})
    assert result.status == "success" and result["shouter"] == {"loud": "HI ANN"}
    records = step_records(caplog)
    made = setup_records(records)
    assert made and {(r.name, run_of(r)) for r in made} == {(f"{MODULE}.greeter", None)}
    ran = records[len(made) :]
    assert [(r.name, r.getMessage()) for r in ran] == [
        (f"{MODULE}.greeter", f"[run {result.run_id}] greeting ann"),
        (f"{MODULE}.greeter", f"[run {result.run_id}] 100% done for ann"),
        (f"{MODULE}.shouter", f"[run {result.run_id}] shouting"),
    ]
    assert [run_of(r) for r in ran] == [result.run_id] * 3


async def test_concurrent_runs_each_log_their_own_run_id(caplog: pytest.LogCaptureFixture) -> None:
    pipeline = two_steps()
    results = await asyncio.gather(*(pipeline.run({"who": f"p{i}"}, run_id=f"run-{i}") for i in range(8)))
    by_run: dict[str, list[str]] = {}
    for record in step_records(caplog):
        if run_of(record) is not None:
            by_run.setdefault(run_of(record), []).append(record.getMessage())
    assert sorted(by_run) == sorted(r.run_id for r in results)
    for i in range(8):
        assert by_run[f"run-{i}"] == [
            f"[run run-{i}] greeting p{i}",
            f"[run run-{i}] 100% done for p{i}",
            f"[run run-{i}] shouting",
        ]


async def test_the_worker_log_format_shows_the_step_and_the_run_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(WORKER_FORMAT))
    logger = logging.getLogger(f"{MODULE}.shouter")
    logger.addHandler(handler)
    try:
        result = await two_steps().run({"who": "bo"}, run_id="r%s-1")  # a % in the id must not break formatting
    finally:
        logger.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    assert line.endswith(f" INFO {MODULE}.shouter: [run r%s-1] shouting")
    assert result.run_id == "r%s-1"


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
async def test_a_streamed_run_puts_its_run_id_on_every_record_of_its_steps(
    caplog: pytest.LogCaptureFixture, fuse: bool
) -> None:
    topics = InMemoryTopics(two_steps(), fuse)  # the stage runner, with topics in memory
    made = setup_records(step_records(caplog))
    assert made and {(r.name, run_of(r)) for r in made} == {(f"{MODULE}.greeter", None)}
    caplog.clear()
    await topics.run([orjson.dumps({"who": "cy"}), orjson.dumps({"who": "di"})])
    assert len(topics.outputs) == 2 and all(o["status"] == "success" for o in topics.outputs)
    for output, who in zip(topics.outputs, ("cy", "di"), strict=True):
        run_id = output["run_id"]
        mine = [r for r in step_records(caplog) if run_of(r) == run_id]
        assert [(r.name, r.getMessage()) for r in mine] == [
            (f"{MODULE}.greeter", f"[run {run_id}] greeting {who}"),
            (f"{MODULE}.greeter", f"[run {run_id}] 100% done for {who}"),
            (f"{MODULE}.shouter", f"[run {run_id}] shouting"),
        ]
    assert len(step_records(caplog)) == 6, "every record of a step in a run carries its run"
