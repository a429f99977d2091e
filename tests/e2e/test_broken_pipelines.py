"""The broken-pipeline corpus (tests/corpus/broken_pipelines): every file, or folder of files, is refused with the
error line a user needs (file, JSON path, what is wrong), by the loader and by a worker, which starts nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ia_modules.pipeline.errors import PipelineConfigError
from streams.process.serve import load_plans

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "broken_pipelines"
CLI = str(Path(sys.executable).parent / "ia-modules")
OUTSIDE = "is outside IA_STEP_PACKAGES (steps, tests): pipeline files may only name code in those packages"

#: case (a file, or a folder of files, in the corpus) -> (the file the error names, its line after "<file>: ")
EXPECTED: dict[str, tuple[str, str]] = {
    "invalid_json": ("invalid_json.json", "$: invalid JSON at line 3 column 1: Expecting value"),
    "empty_file": ("empty_file.json", "$: invalid JSON at line 1 column 1: Expecting value"),
    "not_an_object": ("not_an_object.json", "$: a pipeline is a JSON object, not a list"),
    "steps_not_a_list": (
        "steps_not_a_list.json",
        'steps: should be a list of steps, each {"id": ..., "step_class": ..., "module": ...}, not an object',
    ),
    "step_id_wrong_type": ("step_id_wrong_type.json", "steps[0].id: Input should be a valid string"),
    "step_missing_class": ("step_missing_class.json", "steps[0].step_class: required field is missing"),
    "unknown_step_key_type": (
        "unknown_step_key_type.json",
        "steps[0].retry.max_attempts: Input should be a valid integer, unable to parse string as an integer",
    ),
    "negative_timeout": ("negative_timeout.json", "steps[0].timeout_s: Input should be greater than 0"),
    "unknown_on_error": ("unknown_on_error.json", "steps[0].on_error: Input should be 'fail' or 'continue'"),
    "unknown_module": (
        "unknown_module.json",
        "steps[0].module: cannot import module 'steps.no_such_module': No module named 'steps.no_such_module'",
    ),
    "unknown_class": (
        "unknown_class.json",
        "steps[0].step_class: module 'steps.my_custom_steps' has no attribute 'NoSuchStep'",
    ),
    "class_not_a_step": (
        "class_not_a_step.json",
        "steps[0].step_class: 'steps.text_analysis.TextStatistics' is not a Step subclass",
    ),
    "config_raises": (
        "config_raises.json",
        "steps[0].config: DataTransformStep('load', config) raised ValueError: step 'load': unknown transform_type "
        "'12'; expected one of uppercase, lowercase, reverse, title, strip, none",
    ),
    "module_outside_step_packages": ("module_outside_step_packages.json", f"steps[0].module: module 'this' {OUTSIDE}"),
    "function_outside_step_packages": (
        "function_outside_step_packages.json",
        f"flow.paths[0].condition.config.function: module 'subprocess' {OUTSIDE}",
    ),
    "function_dotted_chain": (
        "function_dotted_chain.json",
        "flow.paths[0].condition.config.function: 'asyncio.create_subprocess_shell' is not a plain name: name one "
        "attribute of the module, no dotted path",
    ),
    "function_reexported": (
        "function_reexported.json",
        f"flow.paths[0].condition.config.function: 'steps._common:datetime' is defined in 'datetime', which {OUTSIDE}",
    ),
    "duplicate_step_ids": ("duplicate_step_ids.json", "steps[1].id: duplicate step id 'load' (first at steps[0])"),
    "reserved_step_id": (
        "reserved_step_id.json",
        "steps[1].id: step id 'output' is reserved (dlq, end, end_with_failure, end_with_success, input, output, "
        "parameters, pipeline_input, steps)",
    ),
    "bad_step_id_characters": (
        "bad_step_id_characters.json",
        "steps[1].id: step id 'shout loud' must match [A-Za-z0-9_-]+",
    ),
    "missing_start_at": ("missing_start_at.json", "flow.start_at: required field is missing"),
    "start_at_unknown": ("start_at_unknown.json", "flow.start_at: unknown step 'nowhere'"),
    "path_to_unknown_step": (
        "path_to_unknown_step.json",
        "flow.paths[1].to: unknown step 'nowhere' (steps or end, end_with_success, end_with_failure)",
    ),
    "path_from_unknown_step": ("path_from_unknown_step.json", "flow.paths[1].from: unknown step 'ghost'"),
    "cycle": ("cycle.json", "flow.paths: cycle: load -> shout -> load"),
    "unreachable_step": ("unreachable_step.json", "steps[2]: step 'orphan' is not reachable from start_at 'load'"),
    "template_unknown_step": (
        "template_unknown_step.json",
        "steps[1].inputs.text: 'lod.transformed_text': unknown step 'lod'",
    ),
    "template_unknown_parameter": (
        "template_unknown_parameter.json",
        "steps[1].inputs.text: 'parameters.treshold': unknown parameter 'treshold'",
    ),
    "template_unknown_root": ("template_unknown_root.json", "outputs.x: 'env.HOME': unknown step 'env'"),
    "template_syntax": ("template_syntax.json", "outputs.x: unclosed template in '{{ shout.transformed_text '"),
    "template_downstream_step": (
        "template_downstream_step.json",
        "steps[0].inputs.x: 'shout.transformed_text': step 'shout' is not upstream of step 'load'",
    ),
    "config_template_not_parameters": (
        "config_template_not_parameters.json",
        "steps[0].config.field_name: 'pipeline_input.field': only parameters may be used here",
    ),
    "unknown_condition_type": (
        "unknown_condition_type.json",
        "flow.paths[0].condition: unknown condition type 'threshold'; expected one of all, always, any, expression, "
        "function, not",
    ),
    "unknown_operator": (
        "unknown_operator.json",
        "flow.paths[0].condition.config.operator: unknown operator 'roughly'; expected one of equals, not_equals, "
        "greater_than, greater_than_or_equal, less_than, less_than_or_equal, in, not_in, contains, not_contains, "
        "starts_with, ends_with, matches, exists, not_exists, is_true, is_false",
    ),
    "bad_regex": (
        "bad_regex.json",
        "flow.paths[0].condition.config.value: invalid regular expression: missing ), unterminated subpattern at "
        "position 0",
    ),
    "partitions_zero": ("partitions_zero.json", "stream.partitions: Input should be greater than or equal to 1"),
    "unknown_stream_key": ("unknown_stream_key.json", "stream.partitons: unknown key (value 4)"),
    "id_clash": ("id_clash/west.json", "stream.id: pipeline id 'orders' is also the id of {corpus}/id_clash/east.json"),
    "id_clash_by_file_name": (
        "id_clash_by_file_name/my_orders.json",
        "stream.id: pipeline id 'my_orders' (from its file name) is also the id of "
        "{corpus}/id_clash_by_file_name/My-Orders.json (from its file name): set a distinct stream.id in one of them",
    ),
    "five_problems": (
        "five_problems.json",
        "steps[2].step_class: module 'steps.my_custom_steps' has no attribute 'NoSuchStep'",
    ),
    "older_transitions": (
        "older_transitions.json",
        "flow.transitions: 'transitions' is an older form that is no longer read: write them as flow.paths, each "
        '{"from": <step>, "to": <step or end>, "condition": {...}} (paths may not form a cycle)',
    ),
    "older_condition_field_greater_than": (
        "older_condition_field_greater_than.json",
        "flow.paths[0].condition: condition type 'field_greater_than' is an older form that is no longer read: "
        'write {"type": "expression", "config": {"source": "result.score", "operator": "greater_than", "value": 0.8}}',
    ),
    "older_condition_threshold": (
        "older_condition_threshold.json",
        "flow.paths[0].condition: condition type 'threshold_condition' is an older form that is no longer read: "
        'write {"type": "expression", "config": {"source": "result.quality_score", "operator": '
        '"greater_than_or_equal", "value": "{{ parameters.threshold }}"}}',
    ),
    "older_condition_success": (
        "older_condition_success.json",
        "flow.paths[0].condition: condition type 'success' is an older form that is no longer read: "
        """write {"type": "always"} (a path leaves 'load' only once it succeeded)""",
    ),
    "older_list_input_without_source": (
        "older_list_input_without_source.json",
        "steps[1].inputs[0]: input 'text' has no 'source' (its template)",
    ),
    "input_topic_clash": (
        "input_topic_clash/shipping.json",
        "stream.input_topics[0]: topic 'ia.billing.input' is also a topic of pipeline 'billing' "
        "({corpus}/input_topic_clash/billing.json)",
    ),
}


def as_folder(case: str, tmp_path: Path) -> Path:
    """The case as a pipelines folder of its own (a worker is given a folder)."""
    source = CORPUS / case
    if source.is_dir():
        return source
    folder = tmp_path / "pipelines"
    folder.mkdir()
    shutil.copy(CORPUS / f"{case}.json", folder / f"{case}.json")
    return folder


def expected_line(case: str, folder: Path) -> str:
    file, line = EXPECTED[case]
    named = CORPUS / file if (CORPUS / case).is_dir() else folder / Path(file).name
    return f"{named}: {line.replace('{corpus}', str(CORPUS))}"


def test_the_corpus_has_every_case_and_nothing_else() -> None:
    cases = {p.stem if p.is_file() else p.name for p in CORPUS.iterdir()}
    assert cases == set(EXPECTED), "every file of the corpus has its expected error, and only those"
    assert len(cases) >= 30


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_the_loader_refuses_it_with_its_error_line(case: str, tmp_path: Path) -> None:
    folder = as_folder(case, tmp_path)
    with pytest.raises(PipelineConfigError) as refused:
        load_plans(folder)
    assert expected_line(case, folder) in str(refused.value).splitlines()


FIVE_PROBLEMS = [
    "flow.paths[0].condition.config.operator: unknown operator 'roughly'; expected one of equals, not_equals, "
    "greater_than, greater_than_or_equal, less_than, less_than_or_equal, in, not_in, contains, not_contains, "
    "starts_with, ends_with, matches, exists, not_exists, is_true, is_false",
    "steps[1].inputs.text: 'lod.transformed_text': unknown step 'lod'",
    "steps[2].step_class: module 'steps.my_custom_steps' has no attribute 'NoSuchStep'",
    "steps[3].inputs.text: 'whisper.transformed_text': step 'whisper' is not upstream of step 'echo'",
    "outputs.threshold: 'parameters.treshold': unknown parameter 'treshold'",
]


def test_a_schema_problem_does_not_hide_the_others_of_the_file(tmp_path: Path) -> None:
    """five_problems.json: a schema problem (an unknown operator), an unknown step, a class that is not there, a
    step that is not upstream, an unknown parameter: all five in one error, and from validate."""
    file = CORPUS / "five_problems.json"
    with pytest.raises(PipelineConfigError) as refused:
        load_plans(as_folder("five_problems", tmp_path))
    assert [line.split(": ", 1)[1] for line in str(refused.value).splitlines()] == FIVE_PROBLEMS
    done = subprocess.run([CLI, "validate", str(file)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [f"{file}: {line}" for line in FIVE_PROBLEMS]


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_a_worker_given_it_refuses_to_start(case: str, tmp_path: Path) -> None:
    folder = as_folder(case, tmp_path)
    done = subprocess.run([CLI, "worker", "--pipelines", str(folder)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected_line(case, folder) in done.stderr.splitlines()
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".ia").exists(), "no broker, database or web server was started"
