"""Charts for facts: the right chart for each shape, inline data only, and real SVG renders."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import vl_convert

from billumy.insights.charts import (
    HEIGHT,
    SCHEMA,
    TITLE_CHARS,
    WIDTH,
    axis_title,
    chart_for,
    escape_field,
    render_svg,
)
from billumy.insights.model import Fact, Scalar


def _fact(kind: str, rows: list[dict[str, Scalar]], columns: list[str] | None = None) -> Fact:
    return Fact(
        id="f1",
        kind=kind,
        statement=f"A {kind} fact.",
        values={},
        columns=columns or [],
        sql="SELECT 1",
        rows=rows,
    )


MONTHLY = _fact(
    "trend",
    [{"month": f"2024-{m:02d}", "revenue": 100.0 + 7.5 * m} for m in range(1, 7)],
    ["month", "revenue"],
)
REGIONS = _fact(
    "top_segment",
    [
        {"region": "Sudeste", "revenue": 500, "share": 0.5},
        {"region": "Sul", "revenue": 300, "share": 0.3},
        {"region": "Norte", "revenue": 200, "share": 0.2},
    ],
    ["region", "revenue"],
)
PAIRS = _fact(
    "correlation",
    [{"price": float(p), "quantity": 100 - 2 * p} for p in range(1, 9)],
    ["price", "quantity"],
)
SPREAD = _fact("distribution", [{"amount": v} for v in (1, 2, 3, 3, 4, 5, 20)], ["amount"])


def _walk(node: Any) -> Iterator[tuple[str | None, Any]]:
    """Every (key, value) in a nested spec; list items come with key None."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield None, item
            yield from _walk(item)


def _assert_self_contained(spec: dict[str, Any], fact: Fact) -> None:
    assert spec["$schema"] == SCHEMA
    assert spec["data"] == {"values": fact.rows}
    assert spec["width"] == WIDTH and spec["height"] == HEIGHT
    for key, value in _walk(spec):
        assert key != "url"
        if isinstance(value, str) and key != "$schema":
            assert "://" not in value, (key, value)


def _compiles(spec: dict[str, Any]) -> None:
    """Vega-Lite accepts the spec (compiling is much cheaper than rendering)."""
    vega = vl_convert.vegalite_to_vega(spec)
    assert vega["marks"]


# --- one chart per shape ----------------------------------------------------------------------


def test_a_series_of_periods_is_a_line_with_points() -> None:
    spec = chart_for(MONTHLY)
    assert spec is not None
    _assert_self_contained(spec, MONTHLY)
    assert spec["mark"] == {"type": "line", "point": True}
    x, y = spec["encoding"]["x"], spec["encoding"]["y"]
    assert (x["field"], x["type"], x["sort"]) == ("month", "ordinal", None)
    assert (y["field"], y["type"], y["title"]) == ("revenue", "quantitative", "revenue")
    assert spec["title"] == {"text": "A trend fact."}
    _compiles(spec)


def test_iso_dates_go_on_a_temporal_axis() -> None:
    fact = _fact("series", [{"day": f"2024-03-{d:02d}", "orders": d} for d in range(1, 6)])
    spec = chart_for(fact)
    assert spec is not None
    assert spec["encoding"]["x"]["type"] == "temporal"
    assert spec["encoding"]["x"]["scale"] == {"type": "utc"}
    _compiles(spec)


def test_a_year_column_of_integers_is_a_period() -> None:
    fact = _fact("period_change", [{"year": 2023, "sales": 10}, {"year": 2024, "sales": 12}])
    spec = chart_for(fact)
    assert spec is not None and spec["mark"]["type"] == "line"
    assert spec["encoding"]["x"]["field"] == "year"


def test_a_count_of_days_is_not_a_period() -> None:
    fact = _fact("by_dimension", [{"store": "A", "day_count": 3}, {"store": "B", "day_count": 5}])
    spec = chart_for(fact)
    assert spec is not None and spec["mark"]["type"] == "bar"


def test_several_series_are_coloured() -> None:
    rows: list[dict[str, Scalar]] = [
        {"month": f"2024-0{m}", "region": r, "revenue": m * 10 + len(r)}
        for m in (1, 2, 3)
        for r in ("Sul", "Norte")
    ]
    spec = chart_for(_fact("trend", rows))
    assert spec is not None
    assert spec["encoding"]["color"]["field"] == "region"


def test_segments_are_bars_sorted_by_value() -> None:
    spec = chart_for(REGIONS)
    assert spec is not None
    _assert_self_contained(spec, REGIONS)
    assert spec["mark"] == {"type": "bar"}
    x, y = spec["encoding"]["x"], spec["encoding"]["y"]
    assert (x["field"], x["type"], x["sort"]) == ("region", "nominal", "-y")
    assert (y["field"], y["type"]) == ("revenue", "quantitative")
    assert [t["field"] for t in spec["encoding"]["tooltip"]] == ["region", "revenue", "share"]
    _compiles(spec)


def test_bottom_segments_are_sorted_ascending() -> None:
    fact = _fact("bottom_segment", REGIONS.rows, ["region", "revenue"])
    spec = chart_for(fact)
    assert spec is not None and spec["encoding"]["x"]["sort"] == "y"


def test_long_labels_make_horizontal_bars() -> None:
    rows: list[dict[str, Scalar]] = [
        {"categoria do produto": "Eletrônicos e informática", "receita": 900},
        {"categoria do produto": "Casa, jardim e decoração", "receita": 700},
    ]
    spec = chart_for(_fact("by_dimension", rows))
    assert spec is not None
    y, x = spec["encoding"]["y"], spec["encoding"]["x"]
    assert (y["field"], y["type"], y["sort"]) == ("categoria do produto", "nominal", "-x")
    assert (x["field"], x["type"]) == ("receita", "quantitative")


def test_shares_draw_the_share_as_a_percentage() -> None:
    spec = chart_for(_fact("share", REGIONS.rows, ["region", "revenue"]))
    assert spec is not None
    assert spec["encoding"]["y"]["field"] == "share"
    assert spec["encoding"]["y"]["axis"] == {"format": ".0%"}


def test_two_numbers_are_a_scatter_plot() -> None:
    spec = chart_for(PAIRS)
    assert spec is not None
    _assert_self_contained(spec, PAIRS)
    assert spec["mark"]["type"] == "point"
    assert spec["encoding"]["x"]["field"] == "price"
    assert spec["encoding"]["y"]["field"] == "quantity"
    _compiles(spec)


def test_a_distribution_is_a_box_over_a_strip() -> None:
    spec = chart_for(SPREAD)
    assert spec is not None
    _assert_self_contained(spec, SPREAD)
    box, ticks = spec["layer"]
    assert box["mark"]["type"] == "boxplot" and ticks["mark"]["type"] == "tick"
    assert ticks["encoding"]["x"]["field"] == "amount"
    _compiles(spec)


def test_few_outliers_are_a_strip_coloured_by_flag() -> None:
    rows: list[dict[str, Scalar]] = [
        {"id": "a", "amount": 1.0, "is_outlier": False},
        {"id": "b", "amount": 50.0, "is_outlier": True},
    ]
    spec = chart_for(_fact("outliers", rows))
    assert spec is not None
    assert spec["mark"]["type"] == "tick"
    assert spec["encoding"]["color"]["field"] == "is_outlier"
    _compiles(spec)


@pytest.mark.parametrize(
    "fact",
    [
        _fact("row_count", [{"rows": 1000}]),
        _fact("top_segment", []),
        _fact("top_segment", [{"region": "Sul"}, {"region": "Norte"}]),  # no number
        _fact("summary", [{"mean": 3.5}]),  # one value is not a chart
    ],
)
def test_no_chart_when_none_fits(fact: Fact) -> None:
    assert chart_for(fact) is None


SUMMARY_ROW: dict[str, Scalar] = {
    "total": 41400.0,
    "mean": 1725.0,
    "min": 1040.0,
    "max": 2710.0,
    "count": 24,
}


@pytest.mark.parametrize(
    "fact",
    [
        # The bug: a one-row summary was drawn as a scatter of "total" against "mean".
        _fact("summary", [SUMMARY_ROW], ["revenue"]),
        _fact("aggregate", [{"sum_revenue": 41400.0, "count": 24}], ["revenue"]),
        _fact("correlation", [{"r": 0.97, "n": 24}], ["revenue", "units"]),  # r, not points
        _fact("trend", [{"period": "2024-01", "revenue": 5900.0}], ["month", "revenue"]),
        _fact("top_segment", [{"region": "Sul", "revenue": 10.0}], ["region", "revenue"]),
        # several rows of numbers without a period or a category are no series or segments
        _fact("summary", [SUMMARY_ROW, SUMMARY_ROW], ["revenue"]),
        _fact("aggregate", [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 5.0}, {"a": 4.0, "b": 1.0}]),
    ],
)
def test_no_chart_for_single_rows_and_plain_numbers(fact: Fact) -> None:
    assert chart_for(fact) is None


def test_scatter_plots_are_for_correlations_only() -> None:
    spec = chart_for(_fact("by_dimension", PAIRS.rows, ["price", "quantity"]))
    assert spec is not None and "mark" not in spec  # a box and strip of price, no scatter
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["boxplot", "tick"]
    spec = chart_for(_fact("correlation", PAIRS.rows[:2], ["price", "quantity"]))
    assert spec is not None and spec["mark"]["type"] == "tick"  # two points are no scatter


def test_summaries_and_aggregates_still_chart_series_and_segments() -> None:
    series = _fact("summary", MONTHLY.rows, ["month", "revenue"])
    spec = chart_for(series)
    assert spec is not None and spec["mark"] == {"type": "line", "point": True}
    segments = _fact("aggregate", REGIONS.rows, ["region", "revenue"])
    spec = chart_for(segments)
    assert spec is not None and spec["mark"] == {"type": "bar"}
    breakdown = _fact(
        "breakdown",
        [
            {"region": "Sudeste", "sum_revenue": 14777.0, "share_pct": 38.3},
            {"region": "Sul", "sum_revenue": 9536.0, "share_pct": 24.7},
        ],
        ["region", "revenue"],
    )
    spec = chart_for(breakdown)
    assert spec is not None and spec["mark"] == {"type": "bar"}
    assert spec["encoding"]["y"]["field"] == "sum_revenue"
    _compiles(spec)


def test_titles() -> None:
    spec = chart_for(REGIONS, title="Revenue by region")
    assert spec is not None and spec["title"] == {"text": "Revenue by region"}
    long = _fact("top_segment", REGIONS.rows)
    long.statement = "Sudeste leads revenue " + "by a wide margin " * 10
    spec = chart_for(long)
    assert spec is not None
    text = spec["title"]["text"]
    assert len(text) <= TITLE_CHARS and text.endswith("…") and text.startswith("Sudeste leads")


def test_cells_are_made_json() -> None:
    rows: list[dict[str, Any]] = [
        {"day": date(2024, 3, 1), "amount": Decimal("1.5"), "ratio": math.nan},
        {"day": date(2024, 3, 2), "amount": Decimal("2.5"), "ratio": 0.5},
    ]
    spec = chart_for(_fact("trend", rows))
    assert spec is not None
    assert spec["data"]["values"] == [
        {"day": "2024-03-01", "amount": 1.5, "ratio": None},
        {"day": "2024-03-02", "amount": 2.5, "ratio": 0.5},
    ]
    assert spec["encoding"]["x"]["type"] == "temporal"


# --- arbitrary column names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("revenue", "revenue"),
        ("a.b", "a\\.b"),
        ("x[0]", "x\\[0\\]"),
        ("it's", "it\\'s"),
        ('say "hi"', 'say \\"hi\\"'),
        ("back\\slash", "back\\\\slash"),
        ("região ção", "região ção"),
        ("100% $ {x}", "100% $ {x}"),
    ],
)
def test_escape_field(name: str, field: str) -> None:
    assert escape_field(name) == field


def test_titles_are_safe_for_vega_expressions() -> None:
    assert axis_title('say "hi" \\ now') == "say ”hi” ∖ now"
    assert axis_title("line\nbreak") == "line break"
    assert axis_title("região") == "região"


WEIRD = _fact(
    "by_dimension",
    [
        {"região.nome[0]": "Sudeste", "a.b": 3, 'it\'s "q"': 1.5, "line\nbreak": 2},
        {"região.nome[0]": "Nordeste", "a.b": 5, 'it\'s "q"': 2.5, "line\nbreak": 4},
    ],
    ["região.nome[0]", "a.b"],
)


def test_weird_names_are_escaped_or_aliased() -> None:
    spec = chart_for(WEIRD)
    assert spec is not None
    _assert_self_contained(spec, WEIRD)
    assert spec["encoding"]["x"]["field"] == "região\\.nome\\[0\\]"
    assert spec["encoding"]["x"]["title"] == "região.nome[0]"
    assert spec["encoding"]["y"]["field"] == "a\\.b"
    (alias,) = spec["transform"]
    assert alias == {"calculate": 'datum["line\\nbreak"]', "as": "billumy_field_3"}


# --- rendering (real, few: each takes tens of milliseconds after the first) --------------------


def test_render_svg_draws_the_data() -> None:
    svg = render_svg(chart_for(WEIRD) or {})
    assert svg.lstrip().startswith("<svg")
    assert "Sudeste" in svg and "Nordeste" in svg
    # The escaped fields were read: the marks carry the values, not NaN.
    labels = re.findall(r'aria-label="([^"]*)"', svg)
    assert any("a.b: 3" in label and "line break: 2" in label for label in labels), labels
    assert "NaN" not in svg


def test_render_svg_of_a_line() -> None:
    svg = render_svg(chart_for(MONTHLY) or {})
    assert "<svg" in svg and "2024-06" in svg


def test_render_svg_never_fetches() -> None:
    spec = {
        "$schema": SCHEMA,
        "data": {"url": "https://example.com/data.csv"},
        "mark": "point",
        "encoding": {"x": {"field": "a", "type": "quantitative"}},
    }
    with pytest.raises(RuntimeError, match="not allowed"):
        render_svg(spec)
