"""The Grafana dashboards, built with grafana-foundation-sdk from the metric definitions.

Three dashboards with fixed uids, so links and bookmarks survive regeneration:

- 监察大屏 (wall display): a few big numbers and colours readable across a service hall;
- 部门详情 (department drill-down): one department, chosen by its name;
- 守护进程健康 (daemon health): the watchdog itself, for operators.

Every panel query is PromQL over the metrics in `watchdog.metrics.definitions`; a test
runs each of them against a real Prometheus scraping a real daemon.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)

DATASOURCE = DataSourceRef(type_val="prometheus", uid="watchdog-prometheus")
JOB = "watchdog"  # the scrape job name in prometheus/prometheus.yml
TAGS = ["watchdog", "电子监察"]

GREEN, YELLOW, RED, BLUE = "green", "#FADE2A", "red", "blue"
SEVERITY_NAMES = (("red", "红牌", RED), ("yellow", "黄牌", YELLOW), ("warning", "预警", BLUE))

WALL_UID = "watchdog-wall"
DEPARTMENT_UID = "watchdog-department"
HEALTH_UID = "watchdog-health"
DEPARTMENT_VARIABLE = "dept_name"


@dataclass(frozen=True)
class Target:
    """One query of a panel and its legend."""

    expr: str
    legend: str = ""


def _thresholds(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    return (
        ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def _queries(targets: Sequence[Target], *, instant: bool) -> list[Dataquery]:
    queries = []
    for index, target in enumerate(targets):
        query = Dataquery().expr(target.expr).ref_id(chr(ord("A") + index)).datasource(DATASOURCE)
        query = query.legend_format(target.legend or "__auto")
        queries.append(query.instant() if instant else query.range())
    return queries


def big_number(
    title: str,
    targets: Sequence[Target],
    thresholds: ThresholdsConfig,
    *,
    unit: str = "none",
    width: int = 6,
    height: int = 6,
    description: str = "",
) -> stat.Panel:
    """A stat card whose whole background takes the threshold colour: readable from afar."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .thresholds(thresholds)
        .color_mode(common.BigValueColorMode.BACKGROUND_SOLID)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .no_value("0")
        .span(width)
        .height(height)
    )
    for query in _queries(targets, instant=True):
        panel = panel.with_target(query)
    return panel


def bars(
    title: str,
    targets: Sequence[Target],
    thresholds: ThresholdsConfig,
    *,
    unit: str = "none",
    width: int = 12,
    height: int = 10,
    max_value: float | None = None,
    description: str = "",
) -> bargauge.Panel:
    """One horizontal bar per series (per department, matter, source...), named by legend."""
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .thresholds(thresholds)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .show_unfilled(True)
        .span(width)
        .height(height)
    )
    if max_value is not None:
        panel = panel.max(max_value)
    for query in _queries(targets, instant=True):
        panel = panel.with_target(query)
    return panel


def trend(
    title: str,
    targets: Sequence[Target],
    *,
    unit: str = "none",
    width: int = 24,
    height: int = 9,
    time_from: str | None = None,
    description: str = "",
) -> timeseries.Panel:
    """A line per series over the dashboard's range (or `time_from`)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .line_width(3)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
        .span(width)
        .height(height)
    )
    if time_from is not None:
        panel = panel.time_from(time_from)
    for query in _queries(targets, instant=False):
        panel = panel.with_target(query)
    return panel


def _severity_trend(selector: str) -> list[Target]:
    return [
        Target(f'sum(watchdog_open_violations{{severity="{severity}"{selector}}})', name)
        for severity, name, _ in SEVERITY_NAMES
    ]


def wall() -> Dashboard:
    """监察大屏: red cards, open violations and 按时办结率 by department, 30-day trend."""
    count = _thresholds((None, GREEN), (1, RED))
    ratio = _thresholds((None, RED), (0.9, YELLOW), (0.95, GREEN))
    dashboard = (
        Dashboard("行政审批电子监察大屏")
        .uid(WALL_UID)
        .tags(TAGS)
        .description("服务大厅与监察室大屏：当前红黄牌、各部门在办违规与按时办结率。")
        .refresh("1m")
        .time("now-30d", "now")
        .timezone("browser")
        .readonly()
    )
    panels: list[Any] = [
        big_number(
            "当前红牌",
            [Target('sum(watchdog_open_violations{severity="red"})', "红牌")],
            count,
        ),
        big_number(
            "当前黄牌",
            [Target('sum(watchdog_open_violations{severity="yellow"})', "黄牌")],
            _thresholds((None, GREEN), (1, YELLOW)),
        ),
        big_number(
            "超期未整改通知书",
            [Target("sum(watchdog_notices_overdue)", "通知书")],
            count,
        ),
        big_number(
            "全县按时办结率（近30天）",
            [
                Target(
                    "sum(watchdog_cases_completed_on_time_30d) / sum(watchdog_cases_completed_30d)",
                    "按时办结率",
                )
            ],
            ratio,
            unit="percentunit",
        ),
        bars(
            "各部门在办违规",
            [Target("sum by (dept_name) (watchdog_open_violations)", "{{dept_name}}")],
            _thresholds((None, GREEN), (1, YELLOW), (10, RED)),
            height=12,
        ),
        bars(
            "各部门按时办结率（近30天）",
            [Target("watchdog_on_time_completion_ratio_30d", "{{dept_name}}")],
            ratio,
            unit="percentunit",
            max_value=1,
            height=12,
        ),
        trend("在办违规趋势（近30天）", _severity_trend(""), time_from="30d", width=16),
        bars(
            "各部门超期未整改通知书",
            [Target("sum by (dept_name) (watchdog_notices_overdue)", "{{dept_name}}")],
            _thresholds((None, GREEN), (1, RED)),
            width=8,
            height=9,
        ),
    ]
    for panel in panels:
        dashboard = dashboard.with_panel(panel)
    return dashboard


def department() -> Dashboard:
    """部门详情: one department, chosen by name in the 部门 drop-down."""
    selector = f',dept_name="${DEPARTMENT_VARIABLE}"'
    only = f'{{dept_name="${DEPARTMENT_VARIABLE}"}}'
    variable = (
        QueryVariable(DEPARTMENT_VARIABLE)
        .label("部门")
        .datasource(DATASOURCE)
        .query(
            {
                "query": "label_values(watchdog_open_cases, dept_name)",
                "refId": "PrometheusVariableQueryEditor-VariableQuery",
            }
        )
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    count = _thresholds((None, GREEN), (1, RED))
    dashboard = (
        Dashboard("部门监察详情")
        .uid(DEPARTMENT_UID)
        .tags(TAGS)
        .description("一个部门的在办违规、在办件、按时办结率与整改通知书。")
        .refresh("1m")
        .time("now-30d", "now")
        .timezone("browser")
        .readonly()
        .with_variable(variable)
    )
    panels: list[Any] = [
        *(
            big_number(
                f"当前{name}",
                [Target(f'sum(watchdog_open_violations{{severity="{sev}"{selector}}})', name)],
                _thresholds((None, GREEN), (1, color)),
                width=4,
            )
            for sev, name, color in SEVERITY_NAMES
        ),
        big_number(
            "在办件",
            [Target(f"sum(watchdog_open_cases{only})", "在办件")],
            _thresholds((None, BLUE)),
            width=4,
        ),
        big_number(
            "超期在办件",
            [Target(f"sum(watchdog_cases_past_due{only})", "超期在办件")],
            count,
            width=4,
        ),
        big_number(
            "按时办结率（近30天）",
            [
                Target(
                    f"sum(watchdog_cases_completed_on_time_30d{only}) / "
                    f"sum(watchdog_cases_completed_30d{only})",
                    "按时办结率",
                )
            ],
            _thresholds((None, RED), (0.9, YELLOW), (0.95, GREEN)),
            unit="percentunit",
            width=4,
            description="近30天按承诺时限办结的件数 / 办结件数；近30天无办结时显示 NaN。",
        ),
        bars(
            "在办违规（按规则）",
            [Target(f"sum by (rule) (watchdog_open_violations{only})", "{{rule}}")],
            _thresholds((None, GREEN), (1, YELLOW), (10, RED)),
            width=8,
        ),
        bars(
            "各事项平均办理天数（近30天）",
            [Target(f"watchdog_processing_days_avg_30d{only}", "{{matter_name}}")],
            _thresholds((None, GREEN)),
            width=10,
            description="按事项时限的计算方式（工作日或自然日）统计，不含特别程序时间。",
        ),
        big_number(
            "超期未整改通知书",
            [Target(f"sum(watchdog_notices_overdue{only})", "通知书")],
            count,
            width=6,
            height=10,
        ),
        trend("在办违规趋势（近30天）", _severity_trend(selector), time_from="30d", width=24),
    ]
    for panel in panels:
        dashboard = dashboard.with_panel(panel)
    return dashboard


def health() -> Dashboard:
    """守护进程健康: is the daemon up, are sources polled, are rules and mail working."""
    ok_when_one = _thresholds((None, RED), (1, GREEN))
    dashboard = (
        Dashboard("监察守护进程运行状况")
        .uid(HEALTH_UID)
        .tags(TAGS)
        .description("watchdog 守护进程自身：数据源轮询、规则评估、通知投递、工作日历。")
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .readonly()
    )
    panels: list[Any] = [
        Row("总体"),
        big_number(
            "守护进程在线", [Target(f'up{{job="{JOB}"}}', "{{instance}}")], ok_when_one, width=6
        ),
        big_number(
            "工作日历剩余覆盖天数",
            [Target("watchdog_calendar_coverage_days", "覆盖天数")],
            _thresholds((None, RED), (30, YELLOW), (90, GREEN)),
            unit="d",
            width=6,
        ),
        big_number(
            "投递失败（永久）",
            [Target('watchdog_deliveries{state="failed_permanent"}', "永久失败")],
            _thresholds((None, GREEN), (1, RED)),
            width=6,
        ),
        big_number(
            "版本",
            [Target("watchdog_build_info", "{{version}}")],
            _thresholds((None, BLUE)),
            width=6,
        ),
        Row("数据源"),
        bars(
            "距最近一次成功轮询（秒）",
            [
                Target(
                    "time() - watchdog_source_last_success_timestamp_seconds",
                    "{{source}}",
                )
            ],
            _thresholds((None, GREEN), (180, RED)),
            unit="s",
            width=8,
            height=8,
        ),
        bars(
            "连续失败次数",
            [Target("watchdog_source_consecutive_failures", "{{source}}")],
            _thresholds((None, GREEN), (1, RED)),
            width=8,
            height=8,
        ),
        bars(
            "水位滞后",
            [Target("watchdog_source_watermark_lag_seconds", "{{source}} {{entity}}")],
            _thresholds((None, GREEN), (3600, YELLOW), (86400, RED)),
            unit="s",
            width=8,
            height=8,
        ),
        trend(
            "轮询耗时 P95",
            [
                Target(
                    "histogram_quantile(0.95, sum by (le, source) "
                    "(rate(watchdog_source_poll_duration_seconds_bucket[5m])))",
                    "{{source}}",
                )
            ],
            unit="s",
            width=12,
        ),
        trend(
            "读取与隔离行数（每分钟）",
            [
                Target(
                    "sum by (source) (rate(watchdog_source_rows_read_total[5m])) * 60",
                    "读取 {{source}}",
                ),
                Target(
                    "sum by (source) (rate(watchdog_source_rows_quarantined_total[5m])) * 60",
                    "隔离 {{source}}",
                ),
            ],
            width=12,
        ),
        Row("规则评估"),
        trend(
            "规则评估耗时 P95",
            [
                Target(
                    "histogram_quantile(0.95, sum by (le, rule) "
                    "(rate(watchdog_rule_evaluation_duration_seconds_bucket[5m])))",
                    "{{rule}}",
                )
            ],
            unit="s",
            width=12,
        ),
        trend(
            "规则错误（每小时）",
            [
                Target("sum by (rule) (increase(watchdog_rule_errors_total[1h]))", "{{rule}}"),
                Target(
                    "sum by (rule_pass) (increase(watchdog_rule_pass_failures_total[1h]))",
                    "整批失败 {{rule_pass}}",
                ),
            ],
            width=12,
        ),
        trend(
            "违规变化（每小时）",
            [
                Target("sum(increase(watchdog_violations_opened_total[1h]))", "新发现"),
                Target("sum(increase(watchdog_violations_upgraded_total[1h]))", "升级"),
                Target("sum(increase(watchdog_violations_resolved_total[1h]))", "已消除"),
            ],
            width=12,
        ),
        trend(
            "统计快照耗时",
            [Target("watchdog_snapshot_duration_seconds", "快照")],
            unit="s",
            width=12,
        ),
        Row("整改通知书"),
        bars(
            "通知书（按状态）",
            [Target("watchdog_notices", "{{state}}")],
            _thresholds((None, BLUE)),
            width=8,
            height=8,
        ),
        bars(
            "投递（按状态）",
            [Target("watchdog_deliveries", "{{state}}")],
            _thresholds((None, BLUE)),
            width=8,
            height=8,
        ),
        big_number(
            "督办（累计）",
            [Target("watchdog_notice_escalations_total", "督办")],
            _thresholds((None, BLUE)),
            width=8,
            height=8,
        ),
    ]
    for panel in panels:
        dashboard = (
            dashboard.with_row(panel) if isinstance(panel, Row) else dashboard.with_panel(panel)
        )
    return dashboard


DASHBOARDS = {"wall": wall, "department": department, "health": health}


def render(name: str) -> str:
    """The JSON text of one dashboard, as committed under grafana/dashboards/."""
    model = DASHBOARDS[name]().build()
    text = JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False).encode(model)
    # Re-dump through json so the file's layout does not depend on the encoder's version.
    return json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
