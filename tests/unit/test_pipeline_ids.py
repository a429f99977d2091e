"""Pipeline ids (DESIGN.md section 3): ``stream.id`` when given, else the file name normalised to ``[a-z0-9_]+``,
so any file name loads; two pipelines of one folder with one id are refused, naming both files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ia_modules.pipeline import Pipeline, PipelineConfigError
from ia_modules.pipeline.loader import find_pipeline, load_plan
from ia_modules.pipeline.models import PIPELINE_ID_PATTERN, pipeline_id_from_file_name
from streams.process.serve import load_plans
from streams.topology import build_topology
from tests.unit.sample_steps import MODULE


def pipeline(**stream: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "Orders",
        "steps": [{"id": "a", "step_class": "ConstStep", "module": MODULE}],
        "flow": {"start_at": "a", "paths": []},
    }
    if stream:
        config["stream"] = stream
    return config


def write(folder: Path, name: str, config: dict[str, Any]) -> Path:
    folder.mkdir(exist_ok=True)
    file = folder / name
    file.write_text(json.dumps(config), encoding="utf-8")
    return file


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("custom_processing", "custom_processing"),
        ("_private__copy", "_private__copy"),  # already an id: kept as it is, so its topics do not change
        ("My-Pipeline", "my_pipeline"),
        ("Orders 2024 (draft)", "orders_2024_draft"),
        ("Café-Commandes", "cafe_commandes"),
        ("orders.v2", "orders_v2"),
        ("订单", "u8ba2_u5355"),
        ("--x--", "x"),
        ("---", ""),
    ],
)
def test_a_file_name_is_normalised_to_the_id_rules(stem: str, expected: str) -> None:
    derived = pipeline_id_from_file_name(stem)
    assert derived == expected
    assert derived == "" or PIPELINE_ID_PATTERN.fullmatch(derived)


@pytest.mark.parametrize(
    ("name", "expected"), [("My-Pipeline.json", "my_pipeline"), ("Orders (copy).json", "orders_copy")]
)
def test_any_file_name_loads_with_the_normalised_id(tmp_path: Path, name: str, expected: str) -> None:
    plan = load_plan(write(tmp_path, name, pipeline()))
    assert (plan.id, plan.id_from) == (expected, "file name")
    assert build_topology(plan).input_topics == (f"ia.{expected}.input",)


def test_stream_id_wins_over_the_file_name(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, "My-Pipeline.json", pipeline(id="orders")))
    assert (plan.id, plan.id_from) == ("orders", "stream.id")


def test_a_pipeline_given_as_a_dict_takes_its_id_from_its_name() -> None:
    assert Pipeline.from_dict(pipeline()).plan.id == "orders"
    assert Pipeline.from_dict(pipeline()).plan.id_from == "name"


def test_a_file_name_with_nothing_to_make_an_id_of_asks_for_stream_id(tmp_path: Path) -> None:
    file = write(tmp_path, "---.json", pipeline())
    with pytest.raises(PipelineConfigError) as caught:
        load_plan(file)
    assert str(caught.value) == f"{file}: stream.id: the file name '---' has no letter or digit: set stream.id"
    assert load_plan(write(tmp_path, "---.json", pipeline(id="dashes"))).id == "dashes"


def test_an_invalid_stream_id_is_reported_and_the_file_name_is_not_blamed(tmp_path: Path) -> None:
    file = write(tmp_path, "My-Pipeline.json", pipeline(id="Bad-Id"))
    with pytest.raises(PipelineConfigError) as caught:
        load_plan(file)
    assert str(caught.value) == f"{file}: stream.id: pipeline id 'Bad-Id' must match [a-z0-9_]+"


def test_a_pipeline_is_found_by_its_normalised_id(tmp_path: Path) -> None:
    file = write(tmp_path, "My-Pipeline.json", pipeline())
    write(tmp_path, "other.json", pipeline(id="renamed"))
    assert find_pipeline("my_pipeline", tmp_path) == file
    assert find_pipeline("renamed", tmp_path) == tmp_path / "other.json"
    with pytest.raises(LookupError, match=r"no pipeline 'nope' in .* \(found: my_pipeline, renamed\)"):
        find_pipeline("nope", tmp_path)


def test_two_file_names_that_give_one_id_are_refused_naming_both(tmp_path: Path) -> None:
    first = write(tmp_path, "My-Orders.json", pipeline())
    second = write(tmp_path, "my_orders.json", pipeline())
    with pytest.raises(PipelineConfigError) as caught:
        load_plans(tmp_path)
    assert str(caught.value) == (
        f"{second}: stream.id: pipeline id 'my_orders' (from its file name) is also the id of {first} (from its file "
        "name): set a distinct stream.id in one of them"
    )


def test_a_stream_id_that_is_another_files_name_is_refused_naming_both(tmp_path: Path) -> None:
    first = write(tmp_path, "a_orders.json", pipeline(id="b_orders"))
    second = write(tmp_path, "b_orders.json", pipeline())
    with pytest.raises(PipelineConfigError) as caught:
        load_plans(tmp_path)
    assert str(caught.value) == (
        f"{second}: stream.id: pipeline id 'b_orders' (from its file name) is also the id of {first} (its "
        "stream.id): set a distinct stream.id in one of them"
    )


def test_two_stream_ids_that_clash_are_refused_naming_both(tmp_path: Path) -> None:
    first = write(tmp_path, "east.json", pipeline(id="orders"))
    second = write(tmp_path, "west.json", pipeline(id="orders"))
    with pytest.raises(PipelineConfigError) as caught:
        load_plans(tmp_path)
    assert str(caught.value) == f"{second}: stream.id: pipeline id 'orders' is also the id of {first}"


def test_file_names_that_give_distinct_ids_load_together(tmp_path: Path) -> None:
    write(tmp_path, "My-Orders.json", pipeline())
    write(tmp_path, "Invoices v2.json", pipeline())
    assert [plan.id for plan in load_plans(tmp_path)] == ["invoices_v2", "my_orders"]
