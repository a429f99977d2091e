"""Pydantic models of the pipeline file: its shape only; cross-references are checked by the compiler."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

STEP_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
PIPELINE_ID_PATTERN = re.compile(r"[a-z0-9_]+")


def pipeline_id_from_file_name(stem: str) -> str:
    """The pipeline id a file name gives (``My-Pipeline`` -> ``my_pipeline``): a stem that is already an id is kept
    as it is; otherwise it is lowercased, accents dropped, other letters written as ``u<code point>``, and every run
    of other characters becomes one ``_``. Empty when nothing of the name is left (``---``)."""
    if PIPELINE_ID_PATTERN.fullmatch(stem):
        return stem
    parts: list[str] = []
    for char in unicodedata.normalize("NFKD", stem):
        if unicodedata.combining(char):
            continue
        lowered = char.lower()
        if lowered.isascii() and (lowered.isalnum() or lowered == "_"):
            parts.append(lowered)
        elif char.isalnum():
            parts.append(f"_u{ord(char):x}_")
        else:
            parts.append("_")
    return re.sub(r"_+", "_", "".join(parts)).strip("_")


#: Targets a path may end in besides a step; all of them flow into the virtual end node.
TERMINALS = ("end", "end_with_success", "end_with_failure")
#: Ids a step may not take: topic suffixes, terminals, and the roots of templates.
RESERVED_STEP_IDS = frozenset({"input", "output", "dlq", *TERMINALS, "parameters", "pipeline_input", "steps"})

OPERATOR_ALIASES = {
    "==": "equals",
    "!=": "not_equals",
    ">": "greater_than",
    ">=": "greater_than_or_equal",
    "<": "less_than",
    "<=": "less_than_or_equal",
}
OPERATORS = (
    "equals",
    "not_equals",
    "greater_than",
    "greater_than_or_equal",
    "less_than",
    "less_than_or_equal",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "matches",
    "exists",
    "not_exists",
    "is_true",
    "is_false",
)
#: Operators that look only at the observed value.
UNARY_OPERATORS = frozenset({"exists", "not_exists", "is_true", "is_false"})


class _Open(BaseModel):
    """Models that keep unknown keys (a step's display ``name``, comments), as the guide's files have them."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RetryPolicy(_Closed):
    max_attempts: int = Field(1, ge=1, le=100)
    backoff_s: float = Field(0.2, ge=0)
    max_backoff_s: float = Field(5.0, ge=0)


class AlwaysCondition(_Closed):
    type: Literal["always"]


class ExpressionConfig(_Closed):
    source: str
    operator: str
    value: Any = None

    @field_validator("operator")
    @classmethod
    def _known_operator(cls, value: str) -> str:
        name = OPERATOR_ALIASES.get(value, value)
        if name not in OPERATORS:
            raise ValueError(f"unknown operator '{value}'; expected one of {', '.join(OPERATORS)}")
        return name

    @model_validator(mode="after")
    def _value_given(self) -> ExpressionConfig:
        if self.operator not in UNARY_OPERATORS and "value" not in self.model_fields_set:
            raise ValueError(f"operator '{self.operator}' needs a 'value'")
        return self


class ExpressionCondition(_Closed):
    type: Literal["expression"]
    config: ExpressionConfig


class FunctionConfig(_Closed):
    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    args: dict[str, Any] = Field(default_factory=dict)


class FunctionCondition(_Closed):
    type: Literal["function"]
    config: FunctionConfig


class AllCondition(_Closed):
    type: Literal["all"]
    conditions: list[Condition] = Field(min_length=1)


class AnyCondition(_Closed):
    type: Literal["any"]
    conditions: list[Condition] = Field(min_length=1)


class NotCondition(_Closed):
    type: Literal["not"]
    condition: Condition


Condition = Annotated[
    AlwaysCondition | ExpressionCondition | FunctionCondition | AllCondition | AnyCondition | NotCondition,
    Field(discriminator="type"),
]


class PathConfig(_Open):
    from_: str = Field(alias="from")
    to: str
    condition: Condition = Field(default_factory=lambda: AlwaysCondition(type="always"))


class FlowConfig(_Open):
    start_at: str
    paths: list[PathConfig] = Field(default_factory=list)


class StepConfig(_Open):
    id: str
    step_class: str
    module: str
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_s: float = Field(30.0, gt=0)
    on_error: Literal["fail", "continue"] = "fail"
    concurrency: int = Field(1, ge=1, le=10_000)
    boundary: bool = False

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not STEP_ID_PATTERN.fullmatch(value):
            raise ValueError(f"step id '{value}' must match [A-Za-z0-9_-]+")
        if value in RESERVED_STEP_IDS:
            raise ValueError(f"step id '{value}' is reserved ({', '.join(sorted(RESERVED_STEP_IDS))})")
        return value


class StreamConfig(_Closed):
    id: str | None = None
    key: str | None = None
    partitions: int = Field(4, ge=1, le=10_000)
    input_topics: list[str] | None = None
    join_timeout_s: float = Field(300.0, gt=0)

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str | None) -> str | None:
        if value is not None and not PIPELINE_ID_PATTERN.fullmatch(value):
            raise ValueError(f"pipeline id '{value}' must match [a-z0-9_]+")
        return value


class PipelineConfig(_Open):
    name: str | None = None
    description: str | None = None
    version: str = "0"
    parameters: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepConfig] = Field(min_length=1)
    flow: FlowConfig
    outputs: Any = None
    stream: StreamConfig = Field(default_factory=StreamConfig)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
