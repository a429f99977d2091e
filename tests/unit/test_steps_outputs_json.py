"""Every step's output survives JSON (steps from several step modules).

Each step is called as the framework does: ``await step.work(data)``.
"""

from __future__ import annotations

import json

from steps.analysis_steps import AdvancedProcessorStep, QualityCheckerStep
from steps.ingest_steps import SummariseReadingsStep
from steps.order_steps import RiskScoringStep
from tests.unit.step_helpers import GOOD_TEXT, normalised, validated


async def test_outputs_are_json_serialisable() -> None:
    outputs = [
        await QualityCheckerStep("qc").work({"cleaned_data": GOOD_TEXT}),
        await AdvancedProcessorStep("adv").work({"data": GOOD_TEXT}),
        await RiskScoringStep("risk").work({"order": await normalised()}),
        await SummariseReadingsStep("sum").work({"record": await validated(), "review": {"reason": "x"}}),
    ]
    for output in outputs:
        assert json.loads(json.dumps(output)) == output
