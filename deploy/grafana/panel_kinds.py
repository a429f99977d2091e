"""Building blocks of the dashboard's panels: the label filters every query carries, PromQL helpers, and the three
kinds of panel it uses (time series, stat, table), each with the `${datasource}` datasource, a unit and a
description.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_model

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

WORKER = 'job=~"$job", instance=~"$instance"'
PIPELINE = WORKER + ', pipeline=~"$pipeline"'
SUCCESS = PIPELINE + ', status="success"'
NOT_OK = PIPELINE + ', status!="ok"'
TAKEN = PIPELINE + ', taken="true"'
Query = tuple[str, str]
"""(PromQL, legend)"""
Panel = cogbuilder.Builder[model.Panel]


def rate(metric: str, labels: str = PIPELINE) -> str:
    return f"rate({metric}{{{labels}}}[$__rate_interval])"


def quantile(q: float, histogram: str, by: str = "", labels: str = PIPELINE) -> str:
    """The q-quantile of a histogram over every process and worker, per the `by` labels."""
    grouping = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({grouping}) ({rate(histogram + '_bucket', labels)}))"


def quantiles(
    histogram: str, by: str = "", labels: str = PIPELINE, qs: Sequence[float] = (0.5, 0.95, 0.99)
) -> list[Query]:
    prefix = "".join(f"{{{{{label.strip()}}}}} " for label in by.split(",") if label.strip())
    return [(quantile(q, histogram, by, labels), f"{prefix}p{round(q * 100)}") for q in qs]


def _targets(queries: Sequence[Query], instant: bool = False) -> list[prometheus.Dataquery]:
    targets = []
    for ref, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
        target = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
        targets.append(target.instant().format(prometheus_model.PromQueryFormat.TABLE) if instant else target.range())
    return targets


def series(title: str, description: str, unit: str, queries: Sequence[Query], width: int = 12) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(8)
        .min(0)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(
            common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
        )
    )
    return panel.targets(list(_targets(queries)))


def single(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    steps: Sequence[tuple[float | None, str]] = (),
    no_value: str = "0",
) -> stat.Panel:
    """A stat: the last value of each query, coloured by the threshold ``steps`` ((from, colour), the first from
    None); ``no_value`` is shown while a query has no series (a counter no process has incremented yet) or gives
    NaN (a quantile of a histogram that observed nothing)."""
    nan = model.DashboardSpecialValueMapOptions(
        match=model.SpecialValueMatch.NA_N, result=model.ValueMappingResult(text=no_value)
    )
    thresholds = [model.Threshold(value=value, color=color) for value, color in steps or [(None, "green")]]
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(4)
        .height(4)
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(builders.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(thresholds))
        .no_value(no_value)
        .mappings([model.SpecialValueMap(options=nan)])
        .targets(list(_targets(queries)))
    )


def listing(title: str, description: str, queries: Sequence[Query], value: str | None = None) -> table.Panel:
    """A table of the label sets of instant queries, one row each; their value is shown under the name ``value``,
    or not at all."""
    organize = {"excludeByName": {"Time": True, "Value": value is None}, "renameByName": {"Value": value or ""}}
    return (
        table.Panel()
        .title(title)
        .description(description)
        .unit("short")
        .datasource(DATASOURCE)
        .span(12)
        .height(6)
        .targets(list(_targets(queries, instant=True)))
        .with_transformation(model.DataTransformerConfig(id_val="organize", options=organize))
    )
