"""Which columns a question names (:func:`named_columns`, :func:`names_a_dimension`): a column
is named by its words, their synonyms or a long enough prefix ("client"/"cliente"), the
strongest match first; words that are a categorical value (alone, or said right after its
column's word: "a fila de vendas") name a segment, never a column.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from billumy.insights.model import ColumnProfile, Profile
from billumy.insights.plan import Agg
from billumy.insights.profile import name_words
from billumy.insights.roles import is_stock
from billumy.insights.synonyms import (
    _SYNONYM_GROUPS,
    _find,
    _fold,
    _groups,
    _tokens,
    _variants,
    _word_match,
)

__all__ = [
    "column_vocabulary",
    "named_columns",
    "names_a_dimension",
    "names_sales",
]


# "data" is Portuguese for "date", but "the data" is English for the data.
_NOT_A_DATE_BEFORE_DATA = {"the", "this", "that", "these", "those", "my", "our", "your", "of"}


def _column_words(tokens: list[frozenset[str]]) -> list[frozenset[str]]:
    """The question words that may name a column: all but the English "the data"."""
    return [
        frozenset() if "data" in t and i and tokens[i - 1] & _NOT_A_DATE_BEFORE_DATA else t
        for i, t in enumerate(tokens)
    ]


@dataclass(frozen=True)
class _Named:
    """Where a column is named in the question (-1: not named) and how: 2 by its own words,
    1 through synonyms or prefixes, 0 by the first of its words alone."""

    position: int = -1
    strength: int = 0
    length: int = 0  # question words the name takes
    # How weakly a fallback names it, among matches of strength 0: 0 by its first word; 1 by
    # another word no other measure has; 2 by a word other measures share ("linhas":
    # order_lines and backlog_lines); 3 by a word that qualifies another ("linhas
    # separadas": "separadas" says which lines).
    weakness: int = 0


def _find_column(
    tokens: list[frozenset[str]], groups: list[frozenset[int]], words: list[str]
) -> _Named:
    """The best place where ``words`` appear in a row in the question, each matched by
    :func:`_word_match`: the strongest match, the first among equals."""
    best = _Named()
    if not words:
        return best
    # A two-word name may come in either order: English puts the adjective first ("unit
    # price" names "preco_unitario").
    orders = [words, words[::-1]] if len(words) == 2 else [words]
    for order in orders:
        for start in range(len(tokens) - len(order) + 1):
            strength = min(
                _word_match(tokens[start + i], groups[start + i], w) for i, w in enumerate(order)
            )
            if strength > best.strength:
                best = _Named(start, strength, len(order))
    if best.position >= 0 or len(words) != 2:
        return best
    # "tickets were closed", "resolveu menos chamados": a two-word name split by a word or
    # two of the sentence.
    for order in orders:
        for gap in (1, 2):
            for start in range(len(tokens) - gap - 1):
                end = start + gap + 1
                strength = min(
                    _word_match(tokens[start], groups[start], order[0]),
                    _word_match(tokens[end], groups[end], order[1]),
                )
                if strength > best.strength:
                    best = _Named(start, strength, gap + 2)
    return best


def _overlap(a: _Named, b: _Named) -> bool:
    """Whether two namings share a word of the question."""
    return a.position < b.position + max(1, b.length) and b.position < a.position + max(1, a.length)


def _strongest(columns: list[ColumnProfile], named: dict[str, _Named]) -> list[ColumnProfile]:
    """The columns named by their own words if any is, else those named through synonyms."""
    found = [c for c in columns if named[c.name].position >= 0]
    if not found:
        return []
    top = max(named[c.name].strength for c in found)
    # "quantas OS abrimos, quantas concluímos e quanto faturamos de mão de obra": each part
    # names its own measure; a part named by synonyms or verbs is not dropped for another
    # part named by its own words, unless it is named no better than a first word (strength 0).
    found = [
        c
        for c in found
        if named[c.name].strength == top
        or (
            named[c.name].strength > 0
            and not any(
                _overlap(named[c.name], named[o.name])
                for o in found
                if named[o.name].strength > named[c.name].strength
            )
        )
    ]

    def inside(inner: _Named, outer: _Named) -> bool:
        return (
            outer.length > inner.length
            and outer.position <= inner.position
            and inner.position + inner.length <= outer.position + outer.length
        )

    # "unit price" names preco_unitario; its word "unit" alone does not also name quantidade.
    found = [c for c in found if not any(inside(named[c.name], named[o.name]) for o in found)]
    # "linhas separadas" names order_lines by its noun; not also units_picked by "separadas";
    # and "lines" shared by order_lines and backlog_lines names the flow, not the stock.
    weakest = min(named[c.name].weakness for c in found)
    found = [c for c in found if named[c.name].weakness == weakest]
    if weakest == 2:
        found = [c for c in found if not is_stock(c)] or found
    return found


_AGG_WORDS: dict[str, Agg] = {
    "total": "sum", "soma": "sum", "sum": "sum", "somatorio": "sum",
    # "quanto arrecadamos de taxa de entrega": what was collected adds up, even of a fee
    "arrecadamos": "sum", "arrecadou": "sum", "arrecadaram": "sum", "arrecadado": "sum",
    "arrecadada": "sum", "collect": "sum", "collected": "sum",
    # "how much did we give away in discounts", "quanto demos de desconto": what was given
    # adds up, even of a measure averaged by default
    "away": "sum", "gave": "sum", "granted": "sum", "demos": "sum", "concedemos": "sum",
    "concedido": "sum", "concedidos": "sum", "concedida": "sum", "concedidas": "sum",
    # the payroll is the salaries added up, a salary alone is averaged (see roles)
    "folha": "sum", "payroll": "sum",
    "media": "avg", "medio": "avg", "average": "avg", "mean": "avg", "avg": "avg",
    "maximo": "max", "maximum": "max", "max": "max",
    "minimo": "min", "minimum": "min", "min": "min",
}  # fmt: skip


_ID_NAME_WORDS = frozenset({"id", "ids", "uuid", "guid", "key", "code", "cod", "codigo", "num"})
_CURRENCY_WORDS = frozenset(
    {"usd", "brl", "eur", "gbp", "reais", "real", "dolares", "dollars", "euros", "rs"}
)
_AMOUNT_WORDS = frozenset(
    {"valor", "value", "amount", "montante", "vl", "vlr", "qtd", "qtde", "quantidade", "qty",
     "quantity", "numero", "number", "num", "n"}
)  # fmt: skip


_CONNECTORS = frozenset(
    {"em", "de", "do", "da", "dos", "das", "no", "na", "nos", "nas", "of", "in", "on", "at",
     "the", "e", "and", "to", "para"}
)  # fmt: skip


def _naming_words(column: ColumnProfile) -> list[str]:
    """The words that name a column in a question: an id column is named by its entity
    ("pedidos" names ``pedido_id``)."""
    # "boletos_em_atraso" is named by "boletos em atraso" and by "late boletos": a name's
    # connecting words are not asked for.
    words = [w for w in name_words(column.name) if w not in _CONNECTORS] or name_words(column.name)
    if column.kind == "id":
        entity = [w for w in words if w not in _ID_NAME_WORDS]
        if not entity and column.entity:
            return name_words(column.entity)
        return entity or words
    if column.kind == "numeric":
        # "valor_total" is named by "valor"/"value": "total" is the question's aggregate word;
        # "valor_reembolsado" by "reembolsado": "valor" only says it is an amount.
        words = [w for w in words if w not in _AGG_WORDS] or words
        # "ad_spend_usd" is named by "ad spend": the currency only says what it is counted in.
        words = [w for w in words if w not in _CURRENCY_WORDS] or words
        return [w for w in words if w not in _AMOUNT_WORDS] or words
    return words


def _named_column(
    words: list[frozenset[str]],
    groups: list[frozenset[int]],
    column: ColumnProfile,
    shared: frozenset[str] = frozenset(),
) -> _Named:
    """Where ``column`` is named: by all its words, or, for a measure of several words, by
    its first alone, more weakly ("churn" names ``churned_accounts``), or by another word of
    it that no other measure's name has ("inadimplência" names ``boletos_em_atraso`` beside
    ``boletos_emitidos``)."""
    naming = _naming_words(column)
    found = _find_column(words, groups, naming)
    if found.position < 0 and column.kind == "numeric" and naming[-1] in _UNIT_SUFFIXES:
        # "energia" names ``energy_mwh`` as fully as "energy MWh": the unit at the end of a
        # measure's name only says what it is counted in.
        found = _find_column(words, groups, naming[:-1]) if len(naming) > 1 else found
    if found.position < 0 and column.kind == "categorical" and len(naming) >= 2:
        # "Qual UF recebe mais envios?": ``uf_destino`` by its first word, more weakly.
        head = _find_column(words, groups, naming[:1])
        # Said as it is, or an abbreviation by its synonym ("state" for ``uf``); a longer
        # first word through a synonym names too much ("envios" is no ``entregue_no_prazo``).
        said = head.position >= 0 and (naming[0] in words[head.position] or len(naming[0]) <= 3)
        if said and naming[0] not in _GENERIC_SHORT:
            return _Named(head.position, 0, head.length)
        # "by category", "por cidade": ``product_category``, ``customer_city`` by their last
        # word, the head of an English compound, more weakly.
        last = naming[-1]
        tail = _find_column(words, groups, naming[-1:])
        if tail.position >= 0 and len(last) >= 4 and last not in _GENERIC_SHORT:
            return _Named(tail.position, 0, tail.length, 2)
    if found.position >= 0 or column.kind != "numeric" or len(naming) < 2:
        return found
    head = _find_column(words, groups, naming[:1])
    if head.position >= 0:
        return _Named(head.position, 0, head.length)
    best = found
    for word in naming[1:]:
        if (len(word) < 3 and not _SYNONYM_GROUPS.get(word)) or word in _GENERIC_SHORT:
            continue  # "kwp" names ``system_kwp``, "kilos" ``peso_kg``; "avg" or "brl" nothing
        other = _find_column(words, groups, [word])
        if other.position < 0:
            continue
        weakness = 3 if _participle(words[other.position]) else 2 if word in shared else 1
        if best.position < 0 or weakness < best.weakness:
            best = _Named(other.position, 0, other.length, weakness)
    return best


_UNIT_SUFFIXES = frozenset(
    {"mwh", "kwh", "gwh", "wh", "mw", "kw", "gw", "kg", "km", "ton", "tons", "dias", "days",
     "min", "mins", "m2", "m3", "ml", "pct"}
)  # fmt: skip
_GENERIC_SHORT = frozenset(
    {"avg", "qtd", "qty", "num", "nro", "pct", "brl", "usd", "eur", "sum", "max", "min", "per",
     "por", "all", "id", "tot", "val", "vlr", "new", "old"}
)  # fmt: skip
_PARTICIPLE_ENDINGS = ("ado", "ada", "ados", "adas", "ido", "ida", "idos", "idas", "ed")


def _participle(forms: frozenset[str]) -> bool:
    """Whether a question word is a participle ("separadas", "picked", "recebido")."""
    return any(f.endswith(_PARTICIPLE_ENDINGS) and len(f) > 4 for f in forms)


def _shared_words(columns: list[ColumnProfile]) -> frozenset[str]:
    """The naming words that more than one measure's name has ("boletos" of
    ``boletos_emitidos`` and ``boletos_em_atraso``)."""
    counts = Counter(w for c in columns if c.kind == "numeric" for w in set(_naming_words(c)))
    return frozenset(w for w, n in counts.items() if n > 1)


def column_vocabulary(profile: Profile) -> frozenset[str]:
    """The words that name the visible columns, with their synonyms ("motivo" and "reason"
    for a column ``motivo``): a question word among them names a column before anything
    else."""
    words = {w for c in profile.columns if not c.masked for w in name_words(c.name)}
    groups = frozenset().union(*(_SYNONYM_GROUPS.get(w, frozenset()) for w in words))
    synonyms = {w for w, g in _SYNONYM_GROUPS.items() if g & groups}
    return frozenset(words | synonyms)


def named_columns(question: str, profile: Profile, *, any_word: bool = False) -> list[str]:
    """Every visible column ``question`` names, by its words, synonyms or first word (with
    ``any_word``, by any one of its words: "resolution" for ``tickets_resolved``), in the
    order named."""
    tokens = _tokens(question)
    visible = [c for c in profile.columns if not c.masked]
    # "a fila de vendas" (queue ``Q01 Vendas``) names a queue, not the sales column.
    beside = _values_beside_their_column(visible, tokens) | _value_words(visible, tokens)
    words = [frozenset() if i in beside else t for i, t in enumerate(_column_words(tokens))]
    groups = [_groups(w) for w in words]
    shared = _shared_words(visible)
    found = {c.name: _named_column(words, groups, c, shared) for c in visible}
    # "the short-pick rate": "pick" is a word of ``short_picks``, named whole there, not a
    # word naming ``units_picked`` as well ("calls offered" leaves ``calls_abandoned`` to be
    # named by "abandonment").
    taken = {
        i: name
        for name, f in found.items()
        if f.length > 1
        for i in range(f.position, f.position + f.length)
    }

    def free(name: str, spot: _Named) -> bool:
        return spot.position >= 0 and taken.get(spot.position, name) == name

    named = []
    for column in visible:
        spot = found[column.name]
        if spot.length <= 1 and not free(column.name, spot):
            spot = _Named()
        if spot.position < 0 and any_word:
            ones = [_find_column(words, groups, [w]) for w in _naming_words(column)]
            spot = min(
                (f for f in ones if free(column.name, f)), key=lambda f: f.position, default=spot
            )
        if spot.position >= 0:
            named.append((spot.position, column.name))
    return [name for _, name in sorted(named)]


def names_a_dimension(question: str, profile: Profile) -> bool:
    """Whether ``question`` names a categorical column (a store, a region...)."""
    tokens = _tokens(question)
    visible = [c for c in profile.columns if not c.masked]
    # "a fila de vendas" (queue ``Q01 Vendas``) names a queue, not the sales column.
    beside = _values_beside_their_column(visible, tokens) | _value_words(visible, tokens)
    words = [frozenset() if i in beside else t for i, t in enumerate(_column_words(tokens))]
    groups = [_groups(w) for w in words]
    visible = [c for c in profile.columns if not c.masked and c.kind in ("categorical", "boolean")]
    return any(_find_column(words, groups, _naming_words(c)).position >= 0 for c in visible)


_SALES_STEMS = ("vend", "sold", "sell", "sale", "fatur", "receit", "revenue", "earn")


def names_sales(name: str) -> bool:
    """Whether a column's name says it is money coming in (receita, revenue, vendas...)."""
    return any(w.startswith(_SALES_STEMS) for w in name_words(name))


def _value_positions(visible: list[ColumnProfile], tokens: list[frozenset[str]]) -> set[int]:
    """The positions of the words of categorical values of more than one word the question
    names ("Total Express", "Customer Support")."""
    spots: set[int] = set()
    for column in visible:
        if column.kind != "categorical":
            continue
        for value, _ in column.top:
            words = re.findall(r"[a-z0-9]+", _fold(value))
            if len(words) > 1 and (at := _find(tokens, words)) >= 0:
                spots.update(range(at, at + len(words)))
    return spots


def _values_beside_their_column(
    visible: list[ColumnProfile], tokens: list[frozenset[str]]
) -> set[int]:
    """The positions of words of a categorical value said right after its column's word ("a
    fila de vendas", "the queue Vendas", "loja centro"): they name the segment, never a
    column ("vendas" is no ``sales_brl`` there)."""
    spots: set[int] = set()
    measure_words = frozenset(
        v for c in visible if c.kind == "numeric" for w in name_words(c.name) for v in _variants(w)
    )
    measure_groups = _groups(measure_words)

    def _names_both(token: frozenset[str], own: set[str]) -> bool:
        """Whether ``token`` names the segment's column and a measure too."""
        names_own = bool(token & own) or bool(_groups(token) & _groups(frozenset(own)))
        return names_own and bool(token & measure_words or _groups(token) & measure_groups)

    for column in visible:
        if column.kind != "categorical":
            continue
        own = {w for w in name_words(column.name) if w not in _CONNECTORS}
        own_groups = _groups(frozenset(own))
        value_words = {
            w for value, _ in column.top for w in re.findall(r"[a-z0-9]+", _fold(value))
        } - _CONNECTORS
        for i, token in enumerate(tokens):
            if not token & value_words or token & own:
                continue
            j = i - 1
            if j >= 0 and tokens[j] & _CONNECTORS:
                j -= 1
            if j >= 0 and (tokens[j] & own or (own_groups and _groups(tokens[j]) & own_groups)):
                spots.add(i)
            # "industrial customers", "clientes industriais" beside a measure ``customers``:
            # the word names the segment's column, not the measure.
            for k in (i - 1, i + 1):
                if 0 <= k < len(tokens) and k not in spots and _names_both(tokens[k], own):
                    spots.add(k)
    return spots


def _value_words(visible: list[ColumnProfile], tokens: list[frozenset[str]]) -> set[int]:
    """The positions of words that are a one-word categorical value ("installed" for status
    ``Installed``) and no word of a column's name: they name the segment, not a column that
    starts like them (``install_days``)."""
    names = {v for c in visible for w in name_words(c.name) for v in _variants(w)}
    values = {
        words[0]
        for c in visible
        if c.kind == "categorical"
        for value, _ in c.top
        if len(words := re.findall(r"[a-z0-9]+", _fold(value))) == 1 and len(words[0]) >= 4
    }
    return {i for i, token in enumerate(tokens) if token & values and not token & values & names}


def _named_value(column: ColumnProfile, tokens: list[frozenset[str]]) -> str | None:
    """The first of the column's frequent values the question names (as whole words)."""
    for value, _ in column.top:
        words = re.findall(r"[a-z0-9]+", _fold(value))
        if words and len("".join(words)) >= 2 and _find(tokens, words) >= 0:
            return value
    return None
