"""The guide's "Custom Data Processing Pipeline" as shipped in pipelines/custom_processing.json, and what the
guide's code relies on from an in-process run: the services ``ia-modules run`` gives (``http``, ``cache``) when
the caller gives none, and nothing left open after, even by a program that never cleans up (its ``main.py``).

The guide's own test samples ("Testing Your Code") are in tests/guide_samples/, copied unchanged.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from ia_modules.pipeline.core import Pipeline, Step
from ia_modules.pipeline.defaults import CacheService, DefaultServices, default_services
from ia_modules.pipeline.runner import run_pipeline, run_pipeline_from_json
from ia_modules.pipeline.services import ServiceRegistry
from streams.process.services import build_services

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


# --- the guide's "Custom Data Processing Pipeline", as shipped ---------------------------------------------


def _events(name: str) -> list[dict[str, Any]]:
    lines = (PIPELINES / f"{name}.events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


async def test_custom_processing_routes_good_text_to_advanced_processing() -> None:
    text = (
        "The new dashboard is a real improvement. Reports load in under two seconds now, and the export "
        "keeps the column formatting. I would still like a dark mode, but this release made reporting easier."
    )
    result = await run_pipeline_from_json(PIPELINES / "custom_processing.json", {"customer_id": "c1", "text": text})

    assert result.status == "success"
    metadata = result.outputs["processing_metadata"]
    assert metadata["processing_type"] == "advanced"
    assert metadata["quality_score"] > 0.8
    assert metadata["total_records"] == 1
    final = json.loads(result.outputs["final_result"])
    assert final == result["advanced_processor"]["result"]
    assert final["statistics"]["words"] == 34
    assert "standard_processor" not in result


async def test_custom_processing_routes_poor_text_to_standard_processing() -> None:
    result = await run_pipeline_from_json(
        PIPELINES / "custom_processing.json", {"customer_id": "c2", "body": "WORST SERVICE EVER!!! NEVER AGAIN!!!"}
    )

    assert result.status == "success"
    metadata = result.outputs["processing_metadata"]
    assert metadata["processing_type"] == "standard"
    assert metadata["quality_score"] <= 0.8
    assert json.loads(result.outputs["final_result"])["preview"] == "WORST SERVICE EVER!!! NEVER AGAIN!!!"


async def test_custom_processing_sample_events_take_both_branches() -> None:
    events = _events("custom_processing")
    assert len(events) >= 50
    assert all(event.get("customer_id") for event in events)
    kinds = []
    for event in events:
        result = await run_pipeline_from_json(PIPELINES / "custom_processing.json", event)
        assert result.status == "success", result.error
        kinds.append(result.outputs["processing_metadata"]["processing_type"])
    advanced, standard = kinds.count("advanced"), kinds.count("standard")
    assert advanced + standard == len(events)
    assert min(advanced, standard) >= len(events) // 3


# --- the services of an in-process run ----------------------------------------------------------------------


class ServicesProbeStep(Step):
    """Reaches ``http`` and ``cache`` as the guide's APICallStep and EnhancedAPIStep do; keeps the clients it got.
    With config ``together``, waits until that many runs hold the client at once."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.clients: list[Any] = []
        self.arrived = 0
        self.all_here = asyncio.Event()

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        http = self.get_http()
        cache = self.get_service("cache")
        self.clients.append(http)
        together = self.config.get("together", 1)
        self.arrived += 1
        if self.arrived >= together:
            self.all_here.set()
        await self.all_here.wait()
        cache.set("last", data.get("n"))
        return {"http": type(http).__name__, "open": not http.is_closed, "cache": type(cache).__name__}


class ServiceKeeper:
    """A service with an async ``close``, as a database manager or an HTTP session has."""

    def __init__(self) -> None:
        self.closes = 0

    async def close(self) -> None:
        asyncio.get_running_loop()  # closed while the loop can still run it
        self.closes += 1


def probe(together: int = 1) -> dict[str, Any]:
    return {
        "name": "Probe",
        "steps": [
            {"id": "probe", "step_class": "ServicesProbeStep", "module": __name__, "config": {"together": together}}
        ],
        "flow": {"start_at": "probe", "paths": []},
    }


TRANSFORM = {  # the guide's "Pipeline Integration Tests" pipeline
    "name": "Test Pipeline",
    "steps": [
        {
            "id": "transform_step",
            "step_class": "DataTransformStep",
            "module": "steps.my_custom_steps",
            "config": {"transform_type": "uppercase", "field_name": "message"},
        }
    ],
    "flow": {"start_at": "transform_step", "paths": []},
}


def probe_of(pipeline: Pipeline) -> ServicesProbeStep:
    step = pipeline.steps_for(None)["probe"]
    assert isinstance(step, ServicesProbeStep)
    return step


async def test_a_run_given_no_services_gets_the_http_client_and_cache_of_ia_modules_run() -> None:
    pipeline = Pipeline.from_dict(probe())
    result = await pipeline.run({"n": 1})
    assert result.status == "success", result.error
    assert result["probe"] == {"http": "AsyncClient", "open": True, "cache": "CacheService"}
    cli = await build_services(None)  # what `ia-modules run` and the worker give without IA_SERVICES
    assert type(cli) is DefaultServices and sorted(cli.names()) == ["cache", "http"]
    assert isinstance(cli.get("http"), httpx.AsyncClient) and isinstance(cli.get("cache"), CacheService)
    await cli.cleanup_all()


async def test_the_default_http_client_is_closed_when_its_run_ends_and_the_next_run_gets_a_new_one() -> None:
    pipeline = Pipeline.from_dict(probe())
    await pipeline.run({"n": 1})
    await pipeline.run({"n": 2})
    first, second = probe_of(pipeline).clients
    assert first is not second
    assert first.is_closed and second.is_closed
    assert pipeline.steps_for(None)["probe"].get_service("cache").get("last") == 2, "the cache outlives runs"


async def test_runs_in_progress_together_share_one_client_closed_after_the_last() -> None:
    pipeline = Pipeline.from_dict(probe(together=5))
    results = await asyncio.gather(*(pipeline.run({"n": n}) for n in range(5)))
    assert all(r["probe"]["open"] for r in results)
    clients = probe_of(pipeline).clients
    assert len(clients) == 5 and len({id(c) for c in clients}) == 1
    assert clients[0].is_closed


async def test_run_pipeline_from_json_without_services_gets_the_defaults(tmp_path: Path) -> None:
    file = tmp_path / "probe.json"
    file.write_text(json.dumps(probe()), encoding="utf-8")
    result = await run_pipeline_from_json(file, {"n": 3})
    assert result["probe"] == {"http": "AsyncClient", "open": True, "cache": "CacheService"}


def test_a_registry_its_program_never_cleans_up_is_closed_when_asyncio_run_ends() -> None:
    kept = ServiceKeeper()

    async def main() -> None:  # as the guide's main.py: register, run, never clean up
        services = ServiceRegistry()
        services.register("database", kept)
        result = await run_pipeline(TRANSFORM, {"message": "hi"}, services)
        assert result["transform_step"]["transformed_text"] == "HI"
        assert kept.closes == 0, "not while the program runs"

    asyncio.run(main())
    assert kept.closes == 1


def test_a_registry_its_program_cleaned_up_is_not_cleaned_again_when_the_loop_ends() -> None:
    kept = ServiceKeeper()

    async def main() -> None:  # as ia-modules run: the default registry, cleaned up at the end
        services = default_services()
        services.register("database", kept)
        assert (await run_pipeline(probe(), {"n": 1}, services))["probe"]["open"]
        await services.cleanup_all()
        assert kept.closes == 1

    asyncio.run(main())
    assert kept.closes == 1


def test_a_default_client_asked_for_outside_a_run_is_closed_when_the_loop_ends() -> None:
    clients: list[Any] = []

    async def main() -> None:  # as the stage runner: steps made for the default services, driven without run()
        step = Pipeline.from_dict(probe()).steps_for(None)["probe"]
        clients.append(step.get_http())
        assert not clients[0].is_closed

    asyncio.run(main())
    assert clients[0].is_closed
