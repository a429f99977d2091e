"""Unit tests of steps/order_steps.py: order intake, pricing, risk scoring, decision, fulfilment and review.

Each step is called as the framework does: ``await step.work(data)``.
"""

from __future__ import annotations

import pytest

from steps.order_steps import (
    FulfilmentPlannerStep,
    OrderDecisionStep,
    OrderIntakeStep,
    PricingStep,
    ReviewQueueStep,
    RiskScoringStep,
)
from tests.unit.step_helpers import ORDER_EVENT, normalised


async def test_order_intake_normalises() -> None:
    result = await OrderIntakeStep("intake").work(dict(ORDER_EVENT))
    order = result["order"]
    assert order["subtotal"] == 60.07 and result["subtotal"] == 60.07
    assert [line["line_total"] for line in order["lines"]] == [59.97, 0.1]
    assert order["item_count"] == 4 and order["line_count"] == 2
    assert order["total_weight_kg"] == 2.75
    assert order["shipping_country"] == "DE"
    assert order["lines"][0]["category"] == "books"
    assert order["customer"] == {"account_age_days": 800, "previous_orders": 14, "email_domain": "web.de"}
    assert order["currency"] == "EUR" and order["coupon"] is None


async def test_order_intake_lists_every_problem() -> None:
    bad = {
        **ORDER_EVENT,
        "order_id": "",
        "items": [{"sku": "A", "quantity": 0, "unit_price": -1}, "x"],
        "billing_country": "Germany",
    }
    with pytest.raises(ValueError) as info:
        await OrderIntakeStep("intake").work(bad)
    message = str(info.value)
    for expected in (
        "order_id must be a non-empty string",
        "items[0].quantity must be a positive integer",
        "items[0].unit_price must be a non-negative number",
        "items[1] must be an object",
        "billing_country must be an ISO 3166 alpha-2 country code",
    ):
        assert expected in message


async def test_pricing_applies_coupon_shipping_and_tax() -> None:
    step = PricingStep(
        "pricing",
        {
            "coupons": {"TEN": {"type": "percent", "value": 10, "min_subtotal": 50}},
            "free_shipping_over": 150,
            "tax_rates": {"DE": 0.19},
        },
    )
    quote = (await step.work({"order": await normalised(coupon="ten")}))["quote"]
    # goods 60.07 - 6.01 = 54.06; shipping 4.90 + 0.40 * 2.75 = 6.00; tax 19% of 60.06 = 11.41
    assert quote == {
        "currency": "EUR",
        "subtotal": 60.07,
        "discount": 6.01,
        "coupon": {"code": "TEN", "applied": True, "amount": 6.01},
        "shipping": 6.0,
        "tax_rate": 0.19,
        "tax": 11.41,
        "total": 71.47,
    }


async def test_pricing_rejects_coupons_below_minimum_and_ships_free_above_threshold() -> None:
    step = PricingStep(
        "pricing",
        {
            "coupons": {"BIG": {"type": "fixed", "value": 20, "min_subtotal": 100}},
            "free_shipping_over": 50,
            "tax_rates": {"DE": 0.19},
        },
    )
    result = await step.work({"order": await normalised(coupon="BIG")})
    assert result["quote"]["coupon"] == {"code": "BIG", "applied": False, "reason": "subtotal below 100.0"}
    assert result["quote"]["shipping"] == 0.0
    assert result["total"] == round(60.07 * 1.19, 2)
    unknown = await step.work({"order": await normalised(coupon="NOPE")})
    assert unknown["quote"]["coupon"]["reason"] == "unknown coupon"


async def test_pricing_errors() -> None:
    with pytest.raises(ValueError, match="unknown shipping method 'drone'"):
        await PricingStep("pricing").work({"order": await normalised(shipping={"country": "DE", "method": "drone"})})
    with pytest.raises(ValueError, match="input 'order'"):
        await PricingStep("pricing").work({})
    with pytest.raises(ValueError, match="coupon 'X' needs a type"):
        PricingStep("pricing", {"coupons": {"x": {"value": 3}}})


async def test_risk_scoring_loyal_customer_is_low_risk() -> None:
    result = await RiskScoringStep("risk").work({"order": await normalised()})
    assert result["risk_score"] == 0
    assert result["assessment"]["level"] == "low"
    assert [s["signal"] for s in result["assessment"]["signals"]] == ["loyal_customer"]


async def test_risk_scoring_fraud_pattern_is_high_risk() -> None:
    order = await normalised(
        customer={"account_age_days": 2, "previous_orders": 0, "email": "x@mailinator.com"},
        items=[{"sku": "GC-100", "category": "gift_cards", "quantity": 5, "unit_price": 100}],
        shipping={"country": "FR", "method": "express"},
        ip_country="NG",
        payment={"method": "card", "card_country": "US"},
    )
    result = await RiskScoringStep("risk").work({"order": order})
    signals = {s["signal"] for s in result["assessment"]["signals"]}
    assert signals == {
        "new_account",
        "first_order",
        "shipping_country_mismatch",
        "ip_country_mismatch",
        "card_country_mismatch",
        "high_risk_goods",
        "gift_cards",
        "disposable_email",
        "express_on_new_account",
    }
    assert result["risk_score"] == 100  # 170 points, capped
    assert result["assessment"]["level"] == "high"


@pytest.mark.parametrize(
    ("score", "total", "decision"),
    [
        (0, 100.0, "approve"),
        (39, 100.0, "approve"),
        (40, 100.0, "review"),
        (10, 2600.0, "review"),
        (75, 100.0, "decline"),
        (100, 5000.0, "decline"),
    ],
)
async def test_order_decision(score: int, total: float, decision: str) -> None:
    step = OrderDecisionStep("decide", {"review_threshold": 40, "decline_threshold": 75, "auto_approve_limit": 2500})
    result = await step.work(
        {
            "order": await normalised(),
            "quote": {"total": total, "currency": "EUR"},
            "assessment": {"score": score, "level": "x", "signals": [{"detail": "why", "points": score}]},
        }
    )
    assert result["decision"] == decision
    assert result["order_summary"]["total"] == total
    assert result["order_summary"]["risk_score"] == score
    if decision == "approve":
        assert result["reasons"] == []
    elif score < 40:
        assert result["reasons"][-1] == "total 2600.00 above the auto-approve limit 2500.00"


async def test_order_decision_needs_both_branches() -> None:
    with pytest.raises(ValueError, match="input\\(s\\) assessment missing: both branches must join"):
        await OrderDecisionStep("decide").work({"order": await normalised(), "quote": {"total": 1}})
    with pytest.raises(ValueError, match="review_threshold must not exceed decline_threshold"):
        OrderDecisionStep("decide", {"review_threshold": 80, "decline_threshold": 70})


async def test_fulfilment_plan() -> None:
    order = await normalised(
        items=[{"sku": "GR-1", "category": "garden", "quantity": 2, "unit_price": 10, "weight_kg": 22.5}]
    )
    plan = (await FulfilmentPlannerStep("plan").work({"order": order}))["plan"]
    assert plan["warehouse"] == "WH-DE-LEJ" and plan["in_region"] is True
    assert plan["parcels"] == 3  # 45 kg in parcels of at most 20 kg
    assert plan["estimated_transit_days"] == 3
    far = await normalised(shipping={"country": "US", "method": "express"}, billing_country="US")
    plan = (await FulfilmentPlannerStep("plan").work({"order": far}))["plan"]
    assert plan["in_region"] is False and plan["warehouse"] == "WH-DE-LEJ"
    assert plan["estimated_transit_days"] == 2


async def test_review_ticket() -> None:
    data = {
        "decision": "decline",
        "reasons": ["card issued in US"],
        "order_summary": {"order_id": "ORD-9", "customer_id": "C9", "total": 120.0, "risk_score": 80},
    }
    ticket = (await ReviewQueueStep("review").work(data))["ticket"]
    assert ticket == {
        "ticket_id": "REV-ORD-9",
        "queue": "declined_orders",
        "priority": "high",
        "action": "void_authorisation",
        "order_id": "ORD-9",
        "customer_id": "C9",
        "risk_score": 80,
        "total": 120.0,
        "reasons": ["card issued in US"],
    }
    with pytest.raises(ValueError, match="got decision 'approve'"):
        await ReviewQueueStep("review").work({**data, "decision": "approve"})
