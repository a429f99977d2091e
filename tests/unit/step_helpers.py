"""Shared inputs and helpers for the step tests (``tests/unit/test_steps_*.py``)."""

from __future__ import annotations

from typing import Any

from ia_modules.pipeline.services import ServiceRegistry
from steps.ingest_steps import ReadingValidatorStep
from steps.order_steps import OrderIntakeStep

GOOD_TEXT = (
    "The hiking boots are comfortable from the first day. After a twelve mile trail with wet sections my feet "
    "stayed dry, and the ankle support is noticeably better than my previous pair. Sizing runs slightly large, "
    "so consider ordering half a size down."
)


def services(**named: Any) -> ServiceRegistry:
    registry = ServiceRegistry()
    for name, service in named.items():
        registry.register(name, service)
    return registry


# --- order enrichment -------------------------------------------------------------------------------------

ORDER_EVENT = {
    "order_id": "ORD-1",
    "customer_id": "C1",
    "customer": {"account_age_days": 800, "previous_orders": 14, "email": "ann@web.de"},
    "items": [
        {"sku": "BK-1", "category": "Books", "quantity": 3, "unit_price": 19.99, "weight_kg": 0.5},
        {"sku": "KT-7", "category": "kitchen", "quantity": 1, "unit_price": 0.1, "weight_kg": 1.25},
    ],
    "shipping": {"country": "de", "method": "standard"},
    "billing_country": "DE",
    "payment": {"method": "card", "card_country": "DE"},
    "ip_country": "DE",
}


async def normalised(**changes: Any) -> dict[str, Any]:
    order: dict[str, Any] = (await OrderIntakeStep("intake").work({**ORDER_EVENT, **changes}))["order"]
    return order


# --- resilient ingest -------------------------------------------------------------------------------------

READING = {
    "record_id": "rd-1",
    "sensor_id": "temp-a1",
    "site": "plant-a",
    "unit": "C",
    "readings": [20, 21.5, 150],
    "recorded_at": "2024-09-03T12:00:00+02:00",
}


async def validated(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = (await ReadingValidatorStep("validate").work({**READING, **changes}))["record"]
    return record
