"""Order enrichment: normalise an order, price it and score its fraud risk in parallel, decide, then plan the
fulfilment or open a review ticket. Money is computed with ``Decimal`` and rounded half-up to cents."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ia_modules.pipeline.core import Step

from ._common import config_float, config_int, is_number

CENT = Decimal("0.01")
_COUNTRY = re.compile(r"[A-Z]{2}")
_EMAIL = re.compile(r"[^@\s]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")


def money(value: Decimal) -> float:
    """``value`` rounded half-up to cents, as a JSON number."""
    return float(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _order_of(step: Step, data: Mapping[str, Any]) -> Mapping[str, Any]:
    order = data.get("order")
    if not isinstance(order, Mapping):
        raise ValueError(f"step '{step.name}': input 'order' (the normalised order) is missing")
    return order


class OrderIntakeStep(Step):
    """Validate a raw order event and normalise it: line totals, subtotal, units, weight, upper-case country
    codes and the customer's history. Every problem is listed in one ValueError, so a malformed order is
    explained at once. Returns ``order`` and, for routing, ``subtotal`` and ``item_count``."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.max_lines = config_int(name, "max_lines", self.config.get("max_lines", 200), minimum=1)
        self.default_currency = str(self.config.get("default_currency", "EUR"))

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        problems: list[str] = []
        order_id = data.get("order_id")
        if not isinstance(order_id, str) or not order_id.strip():
            problems.append("order_id must be a non-empty string")
        items = data.get("items")
        lines: list[dict[str, Any]] = []
        if not isinstance(items, list) or not items:
            problems.append("items must be a non-empty list")
        elif len(items) > self.max_lines:
            problems.append(f"items has {len(items)} lines, more than {self.max_lines}")
        else:
            for index, item in enumerate(items):
                line = self._line(index, item, problems)
                if line is not None:
                    lines.append(line)
        shipping, payment, customer = (_mapping(data.get(key)) for key in ("shipping", "payment", "customer"))
        shipping_country = self._country(shipping.get("country"), "shipping.country", problems, required=True)
        billing_country = self._country(
            data.get("billing_country", shipping.get("country")), "billing_country", problems, required=True
        )
        ip_country = self._country(data.get("ip_country"), "ip_country", problems, required=False)
        card_country = self._country(payment.get("card_country"), "payment.card_country", problems, required=False)
        history = {key: customer.get(key, 0) for key in ("account_age_days", "previous_orders")}
        for key, value in history.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"customer.{key} must be a non-negative integer")
        if problems:
            raise ValueError(f"step '{self.name}': invalid order {order_id!r}: " + "; ".join(problems))

        email = customer.get("email")
        match = _EMAIL.fullmatch(email) if isinstance(email, str) else None
        subtotal = sum((_decimal(line["line_total"]) for line in lines), Decimal(0))
        order = {
            "order_id": str(order_id).strip(),
            "customer_id": data.get("customer_id"),
            "currency": str(data.get("currency", self.default_currency)).upper(),
            "lines": lines,
            "line_count": len(lines),
            "item_count": sum(line["quantity"] for line in lines),
            "subtotal": money(subtotal),
            "total_weight_kg": round(sum(line["weight_kg"] * line["quantity"] for line in lines), 3),
            "shipping_country": shipping_country,
            "shipping_method": str(shipping.get("method", "standard")).lower(),
            "billing_country": billing_country,
            "ip_country": ip_country,
            "payment_method": str(payment.get("method", "card")).lower(),
            "card_country": card_country,
            "coupon": str(data["coupon"]).strip().upper() if data.get("coupon") else None,
            "customer": {**history, "email_domain": match.group(1).lower() if match else None},
        }
        return {"order": order, "subtotal": order["subtotal"], "item_count": order["item_count"], "status": "success"}

    @staticmethod
    def _line(index: int, item: Any, problems: list[str]) -> dict[str, Any] | None:
        where = f"items[{index}]"
        if not isinstance(item, Mapping):
            problems.append(f"{where} must be an object")
            return None
        sku: Any = item.get("sku")
        quantity: Any = item.get("quantity")
        price: Any = item.get("unit_price")
        weight: Any = item.get("weight_kg", 0)
        bad = len(problems)
        if not isinstance(sku, str) or not sku:
            problems.append(f"{where}.sku must be a non-empty string")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            problems.append(f"{where}.quantity must be a positive integer")
        if not is_number(price) or price < 0:
            problems.append(f"{where}.unit_price must be a non-negative number")
        if not is_number(weight) or weight < 0:
            problems.append(f"{where}.weight_kg must be a non-negative number")
        if len(problems) > bad:
            return None
        return {
            "sku": sku,
            "category": str(item.get("category", "general")).lower(),
            "quantity": quantity,
            "unit_price": money(_decimal(price)),
            "line_total": money(_decimal(price) * quantity),
            "weight_kg": float(weight),
        }

    @staticmethod
    def _country(value: Any, where: str, problems: list[str], *, required: bool) -> str | None:
        if value is None and not required:
            return None
        if not isinstance(value, str) or not _COUNTRY.fullmatch(value.strip().upper()):
            problems.append(f"{where} must be an ISO 3166 alpha-2 country code")
            return None
        return value.strip().upper()


DEFAULT_TAX_RATES = {"DE": 0.19, "FR": 0.20, "NL": 0.21, "IE": 0.23, "ES": 0.21, "IT": 0.22, "AT": 0.20, "BE": 0.21}
DEFAULT_SHIPPING = {
    "standard": {"base": 4.90, "per_kg": 0.40},
    "express": {"base": 12.90, "per_kg": 0.90},
    "pickup": {"base": 0.0, "per_kg": 0.0},
}


class PricingStep(Step):
    """Quote an order: coupon discount, shipping (by method and weight, free above a threshold), tax on the
    discounted goods plus shipping at the destination's rate. Config: ``tax_rates`` by country and
    ``default_tax_rate``, ``shipping`` rates by method, ``free_shipping_over``, ``coupons``
    (``{"CODE": {"type": "percent"|"fixed", "value": 10, "min_subtotal": 50}}``). Returns ``quote`` and
    ``total``."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.tax_rates = {
            str(country).upper(): _decimal(config_float(name, f"tax_rates.{country}", rate))
            for country, rate in dict(self.config.get("tax_rates", DEFAULT_TAX_RATES)).items()
        }
        self.default_tax_rate = _decimal(config_float(name, "default_tax_rate", self.config.get("default_tax_rate", 0)))
        self.shipping: dict[str, Any] = dict(self.config.get("shipping", DEFAULT_SHIPPING))
        self.free_shipping_over = _decimal(
            config_float(name, "free_shipping_over", self.config.get("free_shipping_over", 150))
        )
        self.coupons: dict[str, Any] = {str(k).upper(): v for k, v in dict(self.config.get("coupons", {})).items()}
        for code, coupon in self.coupons.items():
            if not isinstance(coupon, Mapping) or coupon.get("type") not in ("percent", "fixed"):
                raise ValueError(f"step '{name}': coupon {code!r} needs a type 'percent' or 'fixed'")

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        order = _order_of(self, data)
        subtotal = _decimal(order["subtotal"])
        discount, coupon_note = self._discount(order.get("coupon"), subtotal)
        method = order.get("shipping_method", "standard")
        rates = self.shipping.get(method)
        if not isinstance(rates, Mapping):
            raise ValueError(f"step '{self.name}': unknown shipping method {method!r}")
        goods = subtotal - discount
        if goods >= self.free_shipping_over and method == "standard":
            shipping = Decimal(0)
        else:
            shipping = _decimal(rates["base"]) + _decimal(rates["per_kg"]) * _decimal(order["total_weight_kg"])
        rate = self.tax_rates.get(order["shipping_country"], self.default_tax_rate)
        tax = ((goods + shipping) * rate).quantize(CENT, rounding=ROUND_HALF_UP)
        total = goods.quantize(CENT, rounding=ROUND_HALF_UP) + shipping.quantize(CENT, rounding=ROUND_HALF_UP) + tax
        quote = {
            "currency": order.get("currency"),
            "subtotal": money(subtotal),
            "discount": money(discount),
            "coupon": coupon_note,
            "shipping": money(shipping),
            "tax_rate": float(rate),
            "tax": money(tax),
            "total": money(total),
        }
        return {"quote": quote, "total": quote["total"], "status": "success"}

    def _discount(self, code: Any, subtotal: Decimal) -> tuple[Decimal, dict[str, Any] | None]:
        if not code:
            return Decimal(0), None
        coupon = self.coupons.get(str(code).upper())
        if coupon is None:
            return Decimal(0), {"code": code, "applied": False, "reason": "unknown coupon"}
        minimum = _decimal(coupon.get("min_subtotal", 0))
        if subtotal < minimum:
            return Decimal(0), {"code": code, "applied": False, "reason": f"subtotal below {money(minimum)}"}
        value = _decimal(coupon["value"])
        amount = subtotal * value / 100 if coupon["type"] == "percent" else min(value, subtotal)
        amount = amount.quantize(CENT, rounding=ROUND_HALF_UP)
        return amount, {"code": code, "applied": True, "amount": money(amount)}


DEFAULT_HIGH_RISK_CATEGORIES = ("electronics", "gift_cards")
DEFAULT_DISPOSABLE_DOMAINS = ("mailinator.com", "tempmail.dev", "10minutemail.com", "guerrillamail.com")


class RiskScoringStep(Step):
    """Score an order's fraud risk from 0 to 100 with explainable rules: account age and history, mismatched
    billing/shipping/IP/card countries, order value, high-risk goods, bulk quantities, disposable e-mail and
    express shipping on a new account; loyal customers earn a credit. Returns ``assessment`` (score, level,
    the signals that fired) and ``risk_score``. Levels: low < 30 <= medium < 60 <= high."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.high_risk_categories = set(self.config.get("high_risk_categories", DEFAULT_HIGH_RISK_CATEGORIES))
        self.disposable_domains = set(self.config.get("disposable_domains", DEFAULT_DISPOSABLE_DOMAINS))
        self.high_value = config_float(name, "high_value", self.config.get("high_value", 1000))

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        order = _order_of(self, data)
        customer = order.get("customer", {})
        age, previous = customer.get("account_age_days", 0), customer.get("previous_orders", 0)
        signals: list[dict[str, Any]] = []

        def signal(name: str, points: int, detail: str) -> None:
            signals.append({"signal": name, "points": points, "detail": detail})

        if age < 7:
            signal("new_account", 30, f"account is {age} days old")
        elif age < 30:
            signal("new_account", 20, f"account is {age} days old")
        if previous == 0:
            signal("first_order", 10, "no previous orders")
        billing, shipping = order.get("billing_country"), order.get("shipping_country")
        if billing != shipping:
            signal("shipping_country_mismatch", 15, f"billing {billing}, shipping {shipping}")
        if order.get("ip_country") and order["ip_country"] != billing:
            signal("ip_country_mismatch", 15, f"order placed from {order['ip_country']}, billing {billing}")
        if order.get("card_country") and order["card_country"] != billing:
            signal("card_country_mismatch", 20, f"card issued in {order['card_country']}, billing {billing}")
        subtotal = float(order.get("subtotal", 0))
        if subtotal > 3 * self.high_value:
            signal("very_high_value", 25, f"subtotal {subtotal:.2f}")
        elif subtotal > self.high_value:
            signal("high_value", 15, f"subtotal {subtotal:.2f}")
        lines = order.get("lines", [])
        risky_units = sum(line["quantity"] for line in lines if line["category"] in self.high_risk_categories)
        if risky_units >= 3:
            signal("high_risk_goods", 15, f"{risky_units} units of high-risk categories")
        if any(line["category"] == "gift_cards" for line in lines):
            signal("gift_cards", 10, "order contains gift cards")
        bulk = [line["sku"] for line in lines if line["quantity"] >= 10]
        if bulk:
            signal("bulk_quantity", 10, f"10 or more units of {', '.join(bulk)}")
        if customer.get("email_domain") in self.disposable_domains:
            signal("disposable_email", 25, f"e-mail at {customer['email_domain']}")
        if order.get("shipping_method") == "express" and age < 30:
            signal("express_on_new_account", 10, "express shipping on a new account")
        if previous >= 10 and age >= 365:
            signal("loyal_customer", -15, f"{previous} previous orders over {age} days")

        score = max(0, min(100, sum(item["points"] for item in signals)))
        level = "low" if score < 30 else "medium" if score < 60 else "high"
        assessment = {"score": score, "level": level, "signals": signals}
        return {"assessment": assessment, "risk_score": score, "status": "success"}


class OrderDecisionStep(Step):
    """Join the pricing and risk branches into one decision: ``decline`` at or above config
    ``decline_threshold`` (default 75), ``review`` at or above ``review_threshold`` (40) or when the total
    exceeds ``auto_approve_limit`` (1500), else ``approve``. Takes inputs ``order``, ``quote`` and
    ``assessment``; returns ``decision``, ``reasons`` and an ``order_summary``."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.review_threshold = config_float(name, "review_threshold", self.config.get("review_threshold", 40))
        self.decline_threshold = config_float(name, "decline_threshold", self.config.get("decline_threshold", 75))
        self.auto_approve_limit = config_float(name, "auto_approve_limit", self.config.get("auto_approve_limit", 1500))
        if self.review_threshold > self.decline_threshold:
            raise ValueError(f"step '{name}': review_threshold must not exceed decline_threshold")

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        order = _order_of(self, data)
        quote, assessment = data.get("quote"), data.get("assessment")
        if not isinstance(quote, Mapping) or not isinstance(assessment, Mapping):
            missing = [key for key in ("quote", "assessment") if not isinstance(data.get(key), Mapping)]
            raise ValueError(f"step '{self.name}': input(s) {', '.join(missing)} missing: both branches must join")
        score, total = assessment["score"], quote["total"]
        reasons = [item["detail"] for item in assessment.get("signals", []) if item["points"] > 0]
        if score >= self.decline_threshold:
            decision = "decline"
        elif score >= self.review_threshold:
            decision = "review"
        elif total > self.auto_approve_limit:
            decision = "review"
            reasons.append(f"total {total:.2f} above the auto-approve limit {self.auto_approve_limit:.2f}")
        else:
            decision = "approve"
        return {
            "decision": decision,
            "reasons": reasons if decision != "approve" else [],
            "order_summary": {
                "order_id": order["order_id"],
                "customer_id": order.get("customer_id"),
                "currency": quote.get("currency"),
                "total": total,
                "risk_score": score,
                "risk_level": assessment.get("level"),
            },
            "status": "success",
        }


DEFAULT_WAREHOUSES = {
    "WH-DE-LEJ": ["DE", "AT", "CH", "PL", "CZ", "DK"],
    "WH-NL-VNL": ["NL", "BE", "LU", "GB", "IE"],
    "WH-FR-LYS": ["FR", "ES", "PT", "IT"],
}
DEFAULT_TRANSIT_DAYS = {"standard": 3, "express": 1, "pickup": 0}


class FulfilmentPlannerStep(Step):
    """Plan an approved order's fulfilment: the warehouse serving the destination (config ``warehouses``,
    falling back to ``default_warehouse``), parcels of at most ``max_parcel_kg`` (default 20 kg), and the
    delivery estimate (transit days by method, one more day when shipping across the warehouse's region)."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.warehouses: dict[str, list[str]] = dict(self.config.get("warehouses", DEFAULT_WAREHOUSES))
        self.default_warehouse = str(self.config.get("default_warehouse", next(iter(self.warehouses))))
        self.max_parcel_kg = config_float(name, "max_parcel_kg", self.config.get("max_parcel_kg", 20))
        self.transit_days: dict[str, int] = dict(self.config.get("transit_days", DEFAULT_TRANSIT_DAYS))

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        order = _order_of(self, data)
        country = order["shipping_country"]
        warehouse = next((wh for wh, countries in self.warehouses.items() if country in countries), None)
        in_region = warehouse is not None
        weight = float(order.get("total_weight_kg", 0))
        parcels = max(1, -(-int(weight * 1000) // int(self.max_parcel_kg * 1000)))
        method = order.get("shipping_method", "standard")
        days = self.transit_days.get(method, self.transit_days.get("standard", 3)) + (0 if in_region else 1)
        plan = {
            "order_id": order["order_id"],
            "warehouse": warehouse or self.default_warehouse,
            "in_region": in_region,
            "shipping_method": method,
            "parcels": parcels,
            "total_weight_kg": weight,
            "estimated_transit_days": days,
            "picks": [{"sku": line["sku"], "quantity": line["quantity"]} for line in order.get("lines", [])],
        }
        return {"plan": plan, "status": "success"}


class ReviewQueueStep(Step):
    """Open a ticket for an order that was not approved: queue ``fraud_review`` for ``review`` and
    ``declined_orders`` for ``decline``, priority by risk score and total, and the action to take on the
    payment. The ticket id derives from the order id, so a replayed event opens the same ticket."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        decision = data.get("decision")
        summary = data.get("order_summary")
        if decision not in ("review", "decline") or not isinstance(summary, Mapping):
            raise ValueError(
                f"step '{self.name}': expects a 'review' or 'decline' decision with its order_summary, "
                f"got decision {decision!r}"
            )
        score, total = summary["risk_score"], summary["total"]
        priority = "high" if score >= 60 or total >= 3000 else "normal" if score >= 40 or total >= 1000 else "low"
        ticket = {
            "ticket_id": f"REV-{summary['order_id']}",
            "queue": "fraud_review" if decision == "review" else "declined_orders",
            "priority": priority,
            "action": "hold_payment" if decision == "review" else "void_authorisation",
            "order_id": summary["order_id"],
            "customer_id": summary.get("customer_id"),
            "risk_score": score,
            "total": total,
            "reasons": list(data.get("reasons", [])),
        }
        return {"ticket": ticket, "status": "success"}
