"""IA_STEP_PACKAGES: a pipeline file names code only from the allowed packages, refused before anything is imported,
with the file, the JSON path and the setting in the error (ia_modules/pipeline/imports.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.errors import PipelineConfigError
from ia_modules.pipeline.imports import ImportProblem, import_from_pipeline, in_packages, step_packages
from ia_modules.pipeline.loader import load_plan


def with_condition(function: str) -> dict[str, Any]:
    return {
        "steps": [
            {"id": "a", "step_class": "DataTransformStep", "module": "steps.my_custom_steps",
             "config": {"transform_type": "uppercase", "field_name": "text"}},
            {"id": "b", "step_class": "DataTransformStep", "module": "steps.my_custom_steps",
             "config": {"transform_type": "uppercase", "field_name": "text"}},
        ],
        "flow": {"start_at": "a", "paths": [{"from": "a", "to": "b", "condition": {
            "type": "function", "config": {"function": function, "args": {"args": "echo pwned"}}}}]},
    }  # fmt: skip


def with_step(module: str, step_class: str = "DataTransformStep") -> dict[str, Any]:
    return {
        "steps": [{"id": "a", "step_class": step_class, "module": module}],
        "flow": {"start_at": "a", "paths": []},
    }


def problems(config: dict[str, Any], tmp_path: Path) -> list[str]:
    file = tmp_path / "hostile.json"
    file.write_bytes(orjson.dumps(config))
    with pytest.raises(PipelineConfigError) as caught:
        load_plan(file)
    assert str(file) in str(caught.value)
    return str(caught.value).splitlines()


def test_the_default_is_steps_and_the_setting_is_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IA_STEP_PACKAGES", raising=False)
    assert step_packages() == ("steps",)
    monkeypatch.setenv("IA_STEP_PACKAGES", " steps , my_company.steps ,")
    assert step_packages() == ("steps", "my_company.steps")


def test_a_package_holds_its_submodules_but_not_a_name_that_only_starts_alike() -> None:
    assert in_packages("steps", ("steps",)) and in_packages("steps.text.deep", ("steps",))
    assert not in_packages("stepsx", ("steps",)) and not in_packages("subprocess", ("steps",))


def test_a_function_condition_naming_subprocess_is_refused_with_path_and_setting(tmp_path: Path) -> None:
    [line] = [p for p in problems(with_condition("subprocess:call"), tmp_path) if "flow.paths[0]" in p]
    assert "flow.paths[0].condition.config.function" in line
    assert "module 'subprocess' is outside IA_STEP_PACKAGES (steps, tests)" in line


def test_a_dotted_chain_after_the_colon_is_refused_even_in_an_allowed_module(tmp_path: Path) -> None:
    [line] = [p for p in problems(with_condition("steps.batch:asyncio.create_subprocess_shell"), tmp_path)
              if "flow.paths[0]" in p]  # fmt: skip
    assert "'asyncio.create_subprocess_shell' is not a plain name" in line


@pytest.mark.parametrize(("name", "origin"), [("call", "subprocess"), ("system", "posix")])
def test_code_re_exported_by_an_allowed_module_is_refused_for_where_it_is_defined(
    name: str, origin: str, tmp_path: Path
) -> None:
    [line] = [p for p in problems(with_condition(f"tests.unit.reexported:{name}"), tmp_path) if "flow.paths" in p]
    assert f"'tests.unit.reexported:{name}' is defined in '{origin}', which is outside IA_STEP_PACKAGES" in line


def test_a_step_class_re_exported_from_an_allowed_package_is_fine() -> None:
    found = import_from_pipeline("tests.unit.reexported", "DataTransformStep", ("steps", "tests"))
    assert found.__module__ == "steps.transform", "defined in steps, re-exported by steps.my_custom_steps"


def test_a_step_module_outside_the_packages_is_refused_before_it_is_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.modules.pop("this", None)
    lines = problems(with_step("this"), tmp_path)
    assert any("steps[0].module: module 'this' is outside IA_STEP_PACKAGES" in line for line in lines)
    assert "this" not in sys.modules, "the module was not imported"
    assert "Zen of Python" not in capsys.readouterr().out


def test_a_step_class_with_a_dotted_chain_is_refused(tmp_path: Path) -> None:
    lines = problems(with_step("steps.batch", "asyncio.subprocess"), tmp_path)
    assert any("steps[0].step_class: 'asyncio.subprocess' is not a plain name" in line for line in lines)


def test_a_package_added_to_the_setting_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IA_STEP_PACKAGES", "steps")
    with pytest.raises(ImportProblem, match="outside IA_STEP_PACKAGES"):
        import_from_pipeline("tests.unit.sample_steps", "ConstStep")
    monkeypatch.setenv("IA_STEP_PACKAGES", "steps,tests.unit")
    assert import_from_pipeline("tests.unit.sample_steps", "ConstStep").__name__ == "ConstStep"


async def test_an_allowed_pipeline_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IA_STEP_PACKAGES", "steps")
    pipeline = Pipeline.from_dict(with_step("steps.my_custom_steps") | {"steps": [
        {"id": "a", "step_class": "DataTransformStep", "module": "steps.my_custom_steps",
         "config": {"transform_type": "uppercase", "field_name": "text"}}]})  # fmt: skip
    result = await pipeline.run({"text": "hi"})
    assert result.status == "success" and result["a"]["transformed_text"] == "HI"
