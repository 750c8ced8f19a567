"""Anomalies: drops and spikes of a measure per segment per period, robust to trend.

A fact of kind ``anomaly`` answers "did any store's sales fall sharply, and when?": the
measure is aggregated per segment of a dimension (or in total when there is none) per period
of the date column, and each segment's series is compared with its own straight-line trend.

Why this method:

* the trend line is Theil–Sen (the median of the slopes between every pair of periods, and
  the median intercept), not least squares: a least-squares line bends towards the very drops
  it should expose, so the expected value would be too low and the drop too small; Theil–Sen
  ignores up to ~29% of wild points. The series are short (weeks or months per segment), so
  the pairs are few;
* a point is flagged when its residual exceeds ``THRESHOLD`` · 1.4826 · MAD of that segment's
  residuals (the MAD scaled to a standard deviation for normal noise; with the median
  intercept the residuals' median is 0, so the MAD is the median ``|residual|``), and only
  when the residual is at least ``MIN_CHANGE_PCT`` of the expected value, so that a very
  regular series never gets its ordinary wobble called a drop;
* for counts (a count of rows, or the sum of an integer column: hires, returns, items) the
  noise is at least Poisson's: the residual must also exceed ``THRESHOLD`` · √expected, so that
  a department hiring 2 to 6 people a month does not get its 9 called a spike because its
  other months happened to sit close to the line (a MAD of 1 says little about counts that
  small);
* segments with fewer than ``MIN_PERIODS`` periods are not judged: too few points to know
  what normal is; a short series (under ``SHORT_PERIODS``: six months of data) is judged only
  on large changes, at least ``MIN_SHORT_CHANGE_PCT`` of the expected value (a month at 2.8x
  or 0.3x its line), since its MAD rests on few points. Periods are numbered by calendar
  distance, so a missing week is a gap in the line, not a shift of every later point. A
  period with no rows at all is not seen.

The fact's ``rows`` are the cases, most severe first (by ``|change_pct|``), exactly what its
``sql`` returns; ``values`` summarise them (``count``, the largest case's fields, the largest
case's segment and direction taken together over its periods as ``group_*``) and what was
checked (``measure``, ``dimension``, ``segments`` and ``periods`` counted by the same CTEs,
``threshold``, ``min_change_pct``, ``direction``: ``drop``, ``spike`` or ``both``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from billumy.insights.data import Table, quote_ident
from billumy.insights.grains import choose_grain, coarser, natural_grain, period_label
from billumy.insights.model import Fact, Profile, Scalar
from billumy.insights.plan import Agg, Grain, Plan
from billumy.insights.profile import dtype_family, name_words, plain
from billumy.insights.roles import _Metric, average_weight, default_agg, main_columns

__all__ = ["Direction", "Scope", "anomaly_fact", "asked_direction", "plan_scope"]

Direction = Literal["drop", "spike", "both"]

THRESHOLD = 3.5  # robust z-score: residual / (1.4826 * MAD)
MIN_PERIODS = 5
SHORT_PERIODS = 8
MIN_CHANGE_PCT = 20.0
MIN_SHORT_CHANGE_PCT = 50.0
SHARP_CHANGE_PCT = 30.0  # "dropped sharply", "despencou": a quarter off is no plunge
SHARP_POISSON = 2.5  # Poisson sigmas a count's case needs when it must also be that large
MIN_COVER = 0.75  # a period seen on under 3/4 of the usual number of days is partial
MIN_WEEKDAY_POINTS = 3  # days of a weekday before its level counts as that weekday's normal
MAX_CASES = 10
MAX_SEGMENTS = 20  # the largest segments by the measure; more would be a table, not an answer

# Question words, folded like column names (no accents, lower case); plurals are read by
# dropping a final "s" ("quedas", "spikes", "outliers").
_DROP_WORDS = frozenset(
    ("queda", "caiu", "cair", "cairam", "caida", "despencou", "despencaram", "despencar",
     "drop", "dropped", "fall", "fell", "fallen", "plunge", "plunged", "crash", "crashed",
     "tank", "tanked", "plummet", "plummeted", "despencou", "desabou", "desabaram", "collapse",
     "collapsed", "desmoronou", "afundou", "derrubou", "sink", "sank")
)  # fmt: skip
_SPIKE_WORDS = frozenset(
    ("pico", "salto", "disparou", "dispararam", "disparar", "explodiu", "explodiram", "saltou",
     "saltaram", "spike", "spiked", "surge", "surged", "jump", "jumped", "soar", "soared",
     "skyrocketed", "shot")
)  # fmt: skip
_ANY_WORDS = frozenset(
    ("anomalia", "anomalo", "anomala", "anormal", "anormais", "atipico", "atipica", "outlier",
     "anomaly", "anomalies", "anomalous", "abnormal", "unusual")
)  # fmt: skip
_ANY_PHRASES = (
    ("fora", "do", "normal"), ("fora", "da", "curva"), ("out", "of", "the", "ordinary"),
    ("fora", "do", "padrao"), ("fugiu", "do", "padrao"), ("fugiram", "do", "padrao"),
    ("fugiu", "da", "curva"), ("saiu", "do", "padrao"), ("out", "of", "pattern"),
    ("out", "of", "line"), ("stood", "out"), ("destoou",), ("destoante",),
)  # fmt: skip
_SPIKE_PHRASES = (
    ("acima", "do", "normal"), ("above", "normal"), ("acima", "da", "media"),
    ("more", "than", "usual"), ("higher", "than", "usual"), ("more", "than", "normal"),
    ("mais", "que", "o", "normal"), ("mais", "do", "que", "o", "normal"),
    ("mais", "que", "o", "comum"), ("blow", "up"), ("blew", "up"), ("explodiu",), ("explodiram",),
)  # fmt: skip
_USUAL = {
    ("than", "usual"), ("than", "normal"), ("than", "expected"), ("que", "o", "normal"),
    ("que", "o", "comum"), ("que", "o", "esperado"), ("do", "que", "normal"),
}  # fmt: skip
_MORE = frozenset({"more", "higher", "bigger", "larger", "mais", "maior", "maiores", "acima"})
_LESS = frozenset({"less", "fewer", "lower", "smaller", "menos", "menor", "menores", "abaixo"})
_DROP_PHRASES = (
    ("abaixo", "do", "normal"), ("below", "normal"), ("abaixo", "da", "media"),
    ("less", "than", "usual"), ("fewer", "than", "usual"), ("lower", "than", "usual"),
    ("menos", "que", "o", "normal"), ("menos", "do", "que", "o", "normal"),
)  # fmt: skip


# Words that ask for large changes only ("did sales drop sharply?", "as vendas despencaram?").
_SHARP_WORDS = frozenset(
    ("sharp", "sharply", "plunge", "plunged", "plummet", "plummeted", "collapse", "collapsed",
     "crash", "crashed", "tank", "tanked", "despencou", "despencaram", "despencar", "desabou",
     "desabaram", "desmoronou", "afundou", "forte", "fortes", "brusca", "bruscas", "brusco",
     "bruscamente", "drastica", "drastico", "drastic", "drastically", "tombo", "skyrocketed",
     "disparou", "dispararam", "explodiu", "explodiram", "huge", "enorme", "massive", "steep")
)  # fmt: skip


def asked_sharp(question: str) -> bool:
    """Whether ``question`` asks for sharp changes only ("drop sharply", "despencaram",
    "queda forte"): then a case must be at least ``SHARP_CHANGE_PCT`` off its expected value."""
    words = name_words(question)
    return bool(set().union(*(_forms(w) for w in words)) & _SHARP_WORDS) if words else False


def _forms(word: str) -> set[str]:
    return {word, word[:-1]} if word.endswith("s") and len(word) > 3 else {word}


def asked_direction(question: str) -> Direction | None:
    """Which anomalies ``question`` asks about (pt-BR or English, accents and plurals
    ignored): ``drop`` for words of falling only ("queda", "caiu", "dropped"), ``spike`` for
    words of rising only ("pico", "salto", "spike"), ``both`` for words of anomaly ("anomalia",
    "fora do normal", "unusual") or for both kinds; None when it asks about none."""
    # "o horário de pico", "peak hours": the busiest hours, no spike.
    words = _drop_rush_hours(name_words(question))
    forms = set().union(*(_forms(w) for w in words)) if words else set()

    def said(phrases: tuple[tuple[str, ...], ...]) -> bool:
        return any(tuple(words[i : i + len(p)]) == p for p in phrases for i in range(len(words)))

    drop = bool(forms & _DROP_WORDS) or said(_DROP_PHRASES)
    spike = bool(forms & _SPIKE_WORDS) or said(_SPIKE_PHRASES)
    # "way more tickets than usual", "menos pedidos que o normal": the comparison word a few
    # words before "than usual" says which way.
    for i in range(len(words)):
        if tuple(words[i : i + 2]) in _USUAL or tuple(words[i : i + 3]) in _USUAL:
            before = set(words[max(0, i - 4) : i])
            spike = spike or bool(before & _MORE)
            drop = drop or bool(before & _LESS)
    phrase = said(_ANY_PHRASES)
    if drop and spike:
        return "both"
    if forms & _ANY_WORDS or phrase:
        # "algum pico anormal?" asks about spikes; "algo anormal?" about both.
        return "drop" if drop else "spike" if spike else "both"
    return "drop" if drop else "spike" if spike else None


_RUSH = frozenset({"horario", "horarios", "hora", "horas", "hour", "hours", "time", "times"})


def _drop_rush_hours(words: list[str]) -> list[str]:
    """``words`` without "pico"/"peak" where it names the busiest hours ("horário de pico",
    "hora de pico", "peak hours", "peak time")."""
    out = []
    for i, word in enumerate(words):
        after = words[i + 1] if i + 1 < len(words) else ""
        before = words[i - 2 : i]
        if word == "pico" and before and before[-1] == "de" and set(before) & _RUSH:
            continue
        if word == "peak" and after in _RUSH:
            continue
        out.append(word)
    return out


@dataclass(frozen=True)
class Scope:
    """What is checked: ``agg`` of ``measure`` per ``dimension`` (None: the total) per
    ``grain`` of ``temporal``."""

    measure: str
    agg: Agg
    dtype: str
    dimension: str | None
    temporal: str
    grain: Grain
    # Where the question narrows it ("em maio", "na loja Sul"): cases are reported, and
    # periods counted, only within [start, end) and among these segments; the series, and so
    # the trend each period is judged against, stay whole.
    start: str | None = None
    end: str | None = None
    only: tuple[str, ...] = ()
    # Segments of other columns the question keeps ("did hot desk bookings spike anywhere?":
    # space_type Hot Desk, judged per location): the series are made of those rows only.
    kept: tuple[tuple[str, str], ...] = ()
    # A rate's series ("did the price per MWh jump?", "did the cancellation rate jump?"):
    # the sum of ``measure`` over the sum of ``per`` in each period, in percent when ``pct``.
    per: str | None = None
    pct: bool = False
    # An average column's weight (:func:`~billumy.insights.roles.average_weight`).
    weight: str | None = None
    # The smallest change, in percent of the expected value, that is a case: larger when the
    # question asks for sharp ones (:func:`asked_sharp`).
    min_change_pct: float = MIN_CHANGE_PCT

    def kept_sql(self) -> str:
        """SQL conditions (each starting with AND) for :attr:`kept`."""
        return "".join(
            f" AND CAST({quote_ident(column)} AS VARCHAR) = '{value.replace(chr(39), chr(39) * 2)}'"
            for column, value in self.kept
        )

    def narrowed(self) -> str:
        """SQL conditions on ``p`` and ``segment`` for the narrowing (or "")."""
        out = ""
        if self.start is not None:
            out += f" AND p >= CAST('{_iso(self.start)}' AS TIMESTAMP)"
        if self.end is not None:
            out += f" AND p < CAST('{_iso(self.end)}' AS TIMESTAMP)"
        if self.only and self.dimension is not None:
            listed = ", ".join("'" + v.replace("'", "''") + "'" for v in self.only)
            out += f" AND CAST(segment AS VARCHAR) IN ({listed})"
        return out


def _iso(text: str) -> str:
    """``text`` as an ISO date (it comes from our own windows; checked all the same)."""
    return date.fromisoformat(text[:10]).isoformat()


def plan_scope(table: Table, profile: Profile, plan: Plan | None) -> Scope | None:
    """The plan's measure, dimension and period where it names them, else the data's main
    ones; None when the data has no measure or no date column to build series from. The
    plan's filters are not applied: a drop is judged against the whole of each series."""
    main_measure, main_dim, main_time = main_columns(profile)
    measure: str | None = main_measure
    agg: Agg | None = None
    if plan is not None and plan.measures[0].column != "*":
        measure, agg = plan.measures[0].column, plan.measures[0].agg
    dims = [d for d in (plan.dimensions if plan else []) if _kind(profile, d) != "temporal"]
    dimension = dims[0] if dims else main_dim
    temporal = plan.period.column if plan is not None and plan.period else main_time
    column = profile.column(measure) if measure else None
    time = profile.column(temporal) if temporal else None
    if column is None or time is None or temporal is None:
        return None
    if agg not in ("sum", "avg", "count"):
        agg = default_agg(column)  # a min or max per period is no series to judge a drop by
    natural = natural_grain(table, temporal)
    grain = choose_grain(time.min, time.max, natural)
    if plan is not None and plan.period is not None:
        grain = coarser(plan.period.grain, natural) if natural else plan.period.grain
    weight = average_weight(profile, column.name) if agg == "avg" else None
    return Scope(column.name, agg, column.dtype, dimension, temporal, grain, weight=weight)


def _kind(profile: Profile, name: str) -> str | None:
    column = profile.column(name)
    return column.kind if column is not None else None


def _series_ctes(scope: Scope) -> str:
    """CTEs ``s`` (value per segment per period), ``x`` (periods numbered by calendar
    distance, ``n`` per segment), ``fit`` (Theil–Sen line) and ``r`` (expected, residual)."""
    t = quote_ident(scope.temporal)
    value = _Metric(scope.measure, scope.agg, scope.dtype, scope.weight).sql
    if scope.per is not None:
        scale = "100.0 * " if scope.pct else ""
        value = (
            f"{scale}sum(CAST({quote_ident(scope.measure)} AS DOUBLE)) / "
            f"nullif(sum(CAST({quote_ident(scope.per)} AS DOUBLE)), 0)"
        )
    if scope.dimension is None:
        segment, keep = "'*'", ""
    else:
        d = quote_ident(scope.dimension)
        segment = d
        keep = (
            f" AND {d} IS NOT NULL AND {d} IN (SELECT {d} FROM data WHERE {d} IS NOT NULL "  # noqa: S608
            f"{scope.kept_sql()} "
            f"GROUP BY {d} ORDER BY {value} DESC NULLS LAST, {d} LIMIT {MAX_SEGMENTS})"
        )
    keep += scope.kept_sql()
    # A period the data covers on far fewer days than usual (the week the data ends in on a
    # Tuesday) would look like a drop: such periods, first or last, are left out.
    cover = (
        f"cover AS (SELECT date_trunc('{scope.grain}', {t}) AS p, "  # noqa: S608
        f"count(DISTINCT CAST({t} AS DATE)) AS d FROM data WHERE {t} IS NOT NULL GROUP BY 1), "
        f"whole AS (SELECT p FROM cover WHERE d >= {MIN_COVER} * "
        "(SELECT median(d) FROM cover) OR (p > (SELECT min(p) FROM cover) "
        "AND p < (SELECT max(p) FROM cover))), "
    )
    return (
        f"WITH {cover}s AS (SELECT {segment} AS segment, "  # noqa: S608
        f"date_trunc('{scope.grain}', {t}) AS p, "
        f"CAST({value} AS DOUBLE) AS value FROM data WHERE {t} IS NOT NULL{keep} "
        "GROUP BY ALL), "
        f"x AS (SELECT *, date_diff('{scope.grain}', min(p) OVER (), p) AS x, "
        "count(*) OVER (PARTITION BY segment) AS n FROM s WHERE value IS NOT NULL "
        "AND p IN (SELECT p FROM whole)), "
        "slopes AS (SELECT a.segment, median((b.value - a.value) / (b.x - a.x)) AS slope "
        "FROM x a JOIN x b ON a.segment = b.segment AND a.x < b.x GROUP BY a.segment), "
        "fit AS (SELECT x.*, slope, median(value - slope * x) OVER (PARTITION BY segment) "
        "AS intercept FROM x JOIN slopes USING (segment)), "
        + _expected_ctes(scope)
        + "m AS (SELECT *, median(abs(residual)) OVER (PARTITION BY segment) AS mad FROM r) "
    )


def _expected_ctes(scope: Scope) -> str:
    """CTE ``r``: each point's expected value and residual. On days, the line times the
    segment's own factor for that weekday (the median of value over line on that weekday, once
    it has at least ``MIN_WEEKDAY_POINTS`` of them): a warehouse's quiet Saturdays and busy
    Mondays are its week, not drops and spikes."""
    line = "intercept + slope * x"
    if scope.grain != "day":
        return f"r AS (SELECT *, {line} AS expected, value - ({line}) AS residual FROM fit), "  # noqa: S608
    factor = (
        f"CASE WHEN wn >= {MIN_WEEKDAY_POINTS} AND wf IS NOT NULL AND wf > 0 THEN wf ELSE 1 END"
    )
    return (
        f"wk AS (SELECT *, median(CASE WHEN {line} > 0 THEN value / ({line}) END) "  # noqa: S608
        "OVER (PARTITION BY segment, dayofweek(p)) AS wf, "
        "count(*) OVER (PARTITION BY segment, dayofweek(p)) AS wn FROM fit), "
        f"r AS (SELECT *, ({line}) * ({factor}) AS expected, "
        f"value - ({line}) * ({factor}) AS residual FROM wk), "
    )


def counts(scope: Scope) -> bool:
    """Whether the series are counts, whose noise is at least Poisson's."""
    return scope.agg == "count" or (scope.agg == "sum" and dtype_family(scope.dtype) == "integer")


def cases_sql(scope: Scope, direction: Direction) -> str:
    """The flagged periods, most severe first (see the module docstring)."""
    sign = {"drop": " AND residual < 0", "spike": " AND residual > 0", "both": ""}[direction]
    # A count's own noise: a case must be further off than Poisson's spread, by less where
    # only large changes are cases (a month of 8 contracts against 19.5 is one).
    sigmas = SHARP_POISSON if scope.min_change_pct >= SHARP_CHANGE_PCT else THRESHOLD
    poisson = f" AND abs(residual) > {sigmas} * sqrt(abs(expected))" if counts(scope) else ""
    segment = "segment" if scope.dimension is not None else "NULL"
    return (
        _series_ctes(scope)  # noqa: S608
        + f"SELECT {segment} AS segment, {period_label(scope.grain, 'p')} AS period, "  # noqa: S608
        "value, expected, residual AS change, 100 * residual / abs(expected) AS change_pct, "
        "CASE WHEN residual < 0 THEN 'drop' ELSE 'spike' END AS direction FROM m "
        f"WHERE n >= {MIN_PERIODS} AND expected <> 0{scope.narrowed()} "
        f"AND abs(residual) > {THRESHOLD} * 1.4826 * mad "
        f"AND abs(residual) >= {scope.min_change_pct / 100} * abs(expected){poisson}{sign} "
        f"AND (n >= {SHORT_PERIODS} OR abs(residual) >= {MIN_SHORT_CHANGE_PCT / 100} "
        "* abs(expected)) "
        f"ORDER BY abs(residual) / abs(expected) DESC, segment, p LIMIT {MAX_CASES}"
    )


def _checked(table: Table, scope: Scope) -> tuple[int, int]:
    """How many segments had enough periods to be judged, and how many periods there are."""
    counts = f"count(DISTINCT segment) FILTER (WHERE n >= {MIN_PERIODS}), count(DISTINCT p)"
    sql = f"{_series_ctes(scope)}SELECT {counts} FROM x WHERE true{scope.narrowed()}"  # noqa: S608
    segments, periods = table.query(sql)[0]
    return int(segments or 0), int(periods or 0)


def anomaly_fact(
    table: Table, scope: Scope, direction: Direction = "both", *, keep_empty: bool = False
) -> Fact | None:
    """The ``anomaly`` fact for ``scope``: its cases in ``rows``, the summary in ``values``.
    Without cases it is None unless ``keep_empty`` (a question asked, so a "no" must say
    what was checked)."""
    sql = cases_sql(scope, direction)
    rows = [{k: plain(v) for k, v in row.items()} for row in table.records(sql)]
    if not rows and not keep_empty:
        return None
    segments, periods = _checked(table, scope)
    values: dict[str, Scalar] = {
        "count": len(rows),
        "direction_checked": direction,
        "measure": scope.measure,
        "agg": scope.agg,
        "dimension": scope.dimension,
        "grain": scope.grain,
        "segments": segments,
        "periods": periods,
        "threshold": THRESHOLD,
        "min_change_pct": scope.min_change_pct,
        "min_periods": MIN_PERIODS,
    }
    if scope.only and scope.dimension is not None:
        values["only"] = " / ".join(scope.only)
    if scope.kept:
        # "nas vendas de Recife": the series are Recife's, which the answer says.
        values["within"] = ", ".join(f"{column} {value}" for column, value in scope.kept)
        if scope.dimension is None and len(scope.kept) == 1:
            # One series, of one segment: whose it is ("Residential").
            values["series_of"] = scope.kept[0][1]
    if scope.per is not None:
        values["per"] = scope.per
        values["pct"] = scope.pct
    if rows:
        values.update({k: rows[0][k] for k in ("segment", "period", "direction")})
        values.update({k: rows[0][k] for k in ("value", "expected", "change", "change_pct")})
        values.update(_group(rows, scope.agg))
    columns = [c for c in (scope.dimension, scope.temporal, scope.measure, scope.per) if c]
    fact = Fact(id="", kind="anomaly", statement="", values=values, columns=columns, sql=sql)
    fact.rows = rows
    fact.statement = _statement(values, rows)
    fact.score = _score(rows)
    return fact


def _group_rows(rows: list[dict[str, Scalar]]) -> list[dict[str, Scalar]]:
    """The cases of the largest case's segment and direction, in period order."""
    top = rows[0]
    same = [r for r in rows if (r["segment"], r["direction"]) == (top["segment"], top["direction"])]
    return sorted(same, key=lambda r: str(r["period"]))


def _group(rows: list[dict[str, Scalar]], agg: Agg) -> dict[str, Scalar]:
    """The largest case's segment and direction over all its flagged periods: their values
    and expected values added up (averaged for a measure that does not add up)."""
    group = _group_rows(rows)
    value = sum(_float(r["value"]) for r in group)
    expected = sum(_float(r["expected"]) for r in group)
    if agg == "avg":
        value, expected = value / len(group), expected / len(group)
    change = value - expected
    return {
        "group_cases": len(group),
        "group_value": value,
        "group_expected": expected,
        "group_change": change,
        "group_change_pct": 100 * change / abs(expected) if expected else None,
        "group_first_period": group[0]["period"],
        "group_last_period": group[-1]["period"],
    }


def _float(value: Scalar) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _score(rows: list[dict[str, Scalar]]) -> float:
    # A real drop or spike is news: ranked with the top segments and trends, above summaries.
    if not rows:
        return 0.3
    return 0.7 + 0.25 * min(1.0, abs(_float(rows[0]["change_pct"])) / 100)


def _statement(values: dict[str, Scalar], rows: list[dict[str, Scalar]]) -> str:
    """The plain English statement facts carry (statements.py writes the reader's one)."""
    what = {"drop": "drop", "spike": "spike", "both": "drop or spike"}[
        str(values["direction_checked"])
    ]
    checked = f"{values['segments']} segments, {values['periods']} {values['grain']}s checked"
    if not values["segments"]:
        return (
            f"Cannot tell whether {values['measure']} had an unusual {what}: "
            f"{values['periods']} {values['grain']}s of data, at least {MIN_PERIODS} needed."
        )
    if not rows:
        return f"No unusual {what} in {values['measure']} ({checked})."
    cases = "; ".join(
        f"{r['segment'] or values['measure']} {r['period']}: {r['value']:.2f} against "
        f"{r['expected']:.2f} expected ({r['change_pct']:+.1f}%)"
        for r in rows
        if isinstance(r["value"], float)
        and isinstance(r["expected"], float)
        and isinstance(r["change_pct"], float)
    )
    return f"{len(rows)} unusual value(s) of {values['measure']} ({checked}): {cases}."
