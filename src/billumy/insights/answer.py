"""The direct answer: a few sentences written by our code from the facts, each citing them.

Why our code and not the model: the answer is what a user reads first, and a sentence built
from a fact's own values (:mod:`billumy.insights.statements`) cannot state a wrong number.
It needs no model, so it is ready as soon as the facts are, and streams before any narrative.

What it says, in the question's language:

* the facts the question's plan produced (its aggregates, its ranking by a dimension, its
  series), in plan order; with no question, the most salient facts;
* with a question but no usable plan, that the question could not be matched to the data's
  columns, followed by the most salient facts (never a guess at what was meant);
* for each part of the question the data cannot answer, because it names a kind of column the
  data lacks (a cost, a profit, a customer, a date...), one plain sentence saying so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from billumy.insights import ratios
from billumy.insights.model import ColumnProfile, Fact, Profile
from billumy.insights.naming import named_columns, names_sales
from billumy.insights.profile import name_words
from billumy.insights.question import OPEN_STARTS
from billumy.insights.rules import DURATION_WORDS, ROW_SPANS, is_duration
from billumy.insights.sentences import fold
from billumy.insights.statements import (
    Context,
    Metric,
    cap,
    compared,
    describe,
    metric_of,
    none_pt,
    span,
)
from billumy.insights.statements import grain_of as _grain_of
from billumy.insights.synonyms import compounds, synonym_groups, variants
from billumy.language import guess_language

__all__ = ["Answer", "Sentence", "build_answer", "missing_columns", "write_answer"]


@dataclass
class Sentence:
    """One sentence of the answer; ``facts`` are the ids it states (none for a sentence about
    what the data lacks); ``kind`` is ``fact``, ``missing`` or ``unmatched``."""

    text: str
    facts: list[str] = field(default_factory=list)
    kind: str = "fact"

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "facts": self.facts, "kind": self.kind}


@dataclass
class Answer:
    language: str  # "pt-BR" or "en"
    sentences: list[Sentence]
    # The parts of the question (question.coverage): kind, words, covered, facts.
    parts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)

    def as_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "text": self.text,
            "sentences": [s.as_dict() for s in self.sentences],
            "parts": self.parts,
        }


@dataclass(frozen=True)
class _Concept:
    """A kind of column a question may ask about: the question words that ask for it, the
    column-name words that provide it, and how to name it in each language."""

    asks: frozenset[str]
    provides: frozenset[str]
    pt: str
    en: str
    temporal: bool = False  # any date column provides it
    quantity: bool = False  # a quantity named in the question's own words ("customer rating")
    which: bool = False  # a kind of segment asked for by "which", that no column holds
    counted: tuple[str, ...] | list[str] = ()  # columns that only count it ("agents_logged")
    # Missing only when the question picks among them ("which members book the most?"); "how
    # many members cancelled?" counts them, which a column of cancellations answers.
    picked: bool = False

    @property
    def dimension(self) -> bool:
        """A kind of segment (customer, doctor, region...): ranking other segments instead
        would be a guess."""
        return not self.temporal and not self.measure

    def qualified(self, question: str) -> bool:
        """Whether ``question`` asks for this quantity *of* something ("the total cost of
        deliveries", "o custo das entregas"): the column named after it only says of what,
        and its own total would answer another question."""
        words = name_words(question)
        return any(w in self.asks and words[i + 1] in _OF_WORDS for i, w in enumerate(words[:-1]))

    @property
    def measure(self) -> bool:
        """A quantity (cost, profit...): a plan summing another column would be a guess."""
        return self.quantity or self.en in _MEASURE_CONCEPTS


# (question words, column-name words, Portuguese name, English name), accent-free and
# lower-case like name_words; kept to kinds of column that one word names unambiguously.
_TABLE = (
    ("custo custos cost costs", "custo custos cost costs despesa despesas spend gasto gastos",
     "custo", "cost"),
    ("lucro lucros lucratividade profit profits", "lucro lucros profit profits", "lucro", "profit"),
    ("margem margens margin margins", "margem margens margin margins", "margem", "margin"),
    ("desconto descontos discount discounts", "desconto descontos discount discounts",
     "desconto", "discount"),
    ("imposto impostos tax taxes", "imposto impostos tax taxes tributo tributos", "imposto", "tax"),
    ("csat nps satisfacao satisfaction review reviews avaliacao avaliacoes rating ratings",
     "csat nps satisfacao satisfaction nota rating score avaliacao review", "satisfação",
     "satisfaction"),
    ("idade idades age ages", "idade idades age ages nascimento birth", "idade", "age"),
    ("cliente clientes customer customers client clients",
     "cliente clientes customer customers client clients", "cliente", "customer"),
    ("produto produtos product products", "produto produtos product products item sku",
     "produto", "product"),
    ("vendedor vendedores seller sellers salesperson",
     "vendedor vendedores seller sellers salesperson rep", "vendedor", "seller"),
    ("regiao regioes region regions", "regiao regioes region regions", "região", "region"),
    ("cidade cidades city cities", "cidade cidades city cities municipio", "cidade", "city"),
    ("canal canais channel channels", "canal canais channel channels", "canal", "channel"),
    ("medico medicos doctor doctors physician physicians",
     "medico medicos doctor doctors physician profissional", "médico", "doctor"),
    ("paciente pacientes patient patients", "paciente pacientes patient patients admissions "
     "admission internacoes internacao internados occupied census", "paciente", "patient"),
    ("professor professores teacher teachers docente docentes instructor instructors",
     "professor professores teacher teachers docente docentes instrutor instrutores",
     "professor", "teacher"),
    ("funcionario funcionarios employee employees colaborador colaboradores",
     "funcionario funcionarios employee employees colaborador colaboradores staff headcount "
     "efetivo pessoas people", "funcionário", "employee"),
    ("fornecedor fornecedores supplier suppliers", "fornecedor fornecedores supplier suppliers "
     "vendor vendors", "fornecedor", "supplier"),
    ("manutencao manutencoes maintenance repair repairs reparo reparos conserto consertos",
     "manutencao manutencoes maintenance repair repairs reparo reparos conserto oficina",
     "manutenção", "maintenance"),
    ("frete fretes freight shipping", "frete fretes freight shipping", "frete", "freight"),
    ("aluguel alugueis rent rents lease leases arrendamento", "aluguel alugueis rent lease "
     "arrendamento", "aluguel", "rent"),
    ("hectare hectares acre acres area areas plantada plantadas planted acreage",
     "hectare hectares ha acre acres area areas acreage", "área (hectares)", "area (hectares)"),
    ("especie especies species cat cats dog dogs gato gatos cachorro cachorros cao caes felino "
     "felinos canino caninos raca racas breed breeds", "especie especies species animal_type "
     "tipo_animal raca breed pet_type", "espécie", "species"),
    ("fazenda fazendas farm farms produtor produtores farmer farmers grower growers "
     "propriedade propriedades", "fazenda fazendas farm farms produtor produtores farmer "
     "farmers grower growers propriedade", "fazenda", "farm"),
    ("solar solares painel paineis panel panels fotovoltaico fotovoltaica fotovoltaicos "
     "photovoltaic pv injetada injetado injetou injetaram injecao exported",
     "solar painel paineis panel panels fotovoltaico photovoltaic pv injetada injecao exported "
     "export", "energia solar", "solar energy"),
    ("energia energy geracao generation generate generated gerou gerada gerado gerar kwh mwh",
     "energia energy geracao generation generated gerada kwh mwh", "geração de energia",
     "energy generation"),
    # How a sale was paid ("paid by credit card", "no cartão", "via Pix"): a column of payment
    # methods, which counts of sales or fill-ups do not hold.
    ("cartao cartoes card cards pix debito debit", "cartao cartoes card cards pagamento "
     "pagamentos payment payments metodo method forma meio pix bandeira", "forma de pagamento",
     "payment method"),
    # A conversion rate is the orders over the visits: without the visits it cannot be told.
    ("conversao conversoes conversion conversions converte convert converts converted "
     "converteu convertem", "sessions session sessoes sessao visitas visita visits visit "
     "visitors visitantes acessos clicks cliques views impressions impressoes leads",
     "visitas ou sessões",
     "visits or sessions"),
)  # fmt: skip
_OF_WORDS = frozenset({"of", "per", "for", "de", "do", "da", "dos", "das", "por", "para"})
_MEASURE_CONCEPTS = frozenset(
    {
        "cost",
        "profit",
        "margin",
        "discount",
        "tax",
        "satisfaction",
        "age",
        "maintenance",
        "energy generation",
        "solar energy",
        "rent",
        "freight",
        "area (hectares)",
        "visits or sessions",
    }
)
_PERIOD_ASKS = (
    "mes meses mensal month months monthly semana semanas semanal week weeks weekly diario "
    "diaria daily ano anos anual year years yearly trimestre quarter quando when tendencia trend"
)
_PERIOD_PROVIDES = "data date mes month semana week dia day ano year periodo period trimestre"
_MEMBERS = (
    "membro membros member members associado associados socio socios assinante assinantes "
    "subscriber subscribers cooperado cooperados"
)
# "cooperados ativos", "active members": the members on the books, a level only a column of
# them holds (``alunos_ativos``, ``subscribers``), not one of contracts or money.
_ON_THE_BOOKS = frozenset({"ativo", "ativos", "ativa", "ativas", "active", "current"})
_MEMBER_LEVELS = frozenset(
    {"ativo", "ativos", "ativa", "ativas", "active", "alunos", "matriculados", "enrolled",
     "inscritos", "clientes", "customers", "accounts", "contas"}
)  # fmt: skip
_CONCEPTS = (
    *(_Concept(frozenset(a.split()), frozenset(p.split()), pt, en) for a, p, pt, en in _TABLE),
    _Concept(
        frozenset(_MEMBERS.split()), frozenset(_MEMBERS.split()), "membro", "member", picked=True
    ),
    _Concept(
        frozenset(_PERIOD_ASKS.split()),
        frozenset(_PERIOD_PROVIDES.split()),
        "data ou período",
        "date or period",
        temporal=True,
    ),
)


def _words(text: str) -> set[str]:
    return set(name_words(text))


_RATE_WORDS = frozenset(
    {"taxa", "rate", "pct", "percent", "percentual", "porcentagem", "ratio", "indice", "share"}
)


def _is_rate_column(column: ColumnProfile) -> bool:
    """A number column of a rate: named so, or written with "%"."""
    return column.kind == "numeric" and (column.percent or bool(_words(column.name) & _RATE_WORDS))


def missing_columns(question: str, profile: Profile) -> list[_Concept]:
    """The kinds of column ``question`` asks about that no visible column provides."""
    visible = [c for c in profile.columns if not c.masked]
    # A word inside a value the data holds ("Customer Support") names that value, not a
    # missing column.
    values = set().union(*(_words(v) for c in visible if c.kind == "categorical" for v, _ in c.top))
    asked = _words(compounds(fold(question))) - values  # "on-time" is no time of day
    column_words = set().union(*(_words(c.name) for c in visible)) if visible else set()
    missing = []
    for concept in _CONCEPTS:
        if not concept.asks & asked:
            continue
        on_the_books = bool(asked & _ON_THE_BOOKS) and not _MEMBER_LEVELS & column_words
        if concept.picked and not concept.asks & set(_which_nouns(question)) and not on_the_books:
            # "quantos membros cancelaram?" is the cancellations; "qual agência tem mais
            # cooperados ativos?" the members on the books, which no column here holds.
            continue
        if concept.provides & column_words or _has_temporal(concept, visible):
            continue
        if any(concept.asks & _words(c.name) and _is_rate_column(c) for c in visible):
            # ``taxa_conversao``, ``conversion_pct``: the rate itself, with no need of what
            # it is over.
            continue
        if concept.picked and on_the_books:
            # A count of members is the quantity asked for, said as the question says it.
            spelled = [w.lower() for w in re.findall(r"\w+", question)]
            said = next((w for w in spelled if "".join(name_words(w)) in concept.asks), None)
            if said is not None:
                concept = replace(concept, pt=said, en=said, quantity=True)
        missing.append(concept)
    # "the average length of stay", "the price we get per pastry": a rate the data's columns
    # make (bed-days over discharges, sales over units sold) is no missing quantity.
    # "a taxa de faltas" on a status ``Faltou``: the share of the rows holding that value.
    rated = ratios.rate_of(question, profile) or ratios.rated_value(question, profile)
    for words in [] if rated else _asked_quantities(question):
        # "the average customer rating", "a idade média": a quantity no column is named by
        # (nor a value the data holds, nor a word any quantity may go by).
        forms = {v for w in words for v in variants(w)}  # "apartamentos" of ``Apartamento``
        if forms & (values | _ANY_QUANTITY) or any(set(words) <= c.asks for c in missing):
            continue
        phrase = " ".join(words)
        # "tempo de atendimento" is named only by a column of both ("avg_wait_sec" is a time
        # of waiting); other phrases by any of their words.
        qualified = len(words) == 3 and words[1] in _OF_WORDS
        named = named_columns(phrase, profile, any_word=not qualified)
        if qualified:
            # The head is named by the column, or is a time and the column a duration.
            heads = set(named_columns(words[0], profile))
            if words[0] in DURATION_WORDS:
                heads |= {c.name for c in visible if is_duration(c)}
            named = [n for n in named_columns(words[2], profile) if n in heads]
            if words[0] in DURATION_WORDS and set(ROW_SPANS.values()) & {c.name for c in visible}:
                # Each row's time from its start to its end is its "tempo de atendimento".
                continue
        if named or ratios.known_rate(phrase):
            continue
        if names_sales(phrase) and any(c.kind == "numeric" and c.money for c in visible):
            # "a média semanal de faturamento" with ``gross_bookings_usd``: the money column.
            continue
        # Said as the question writes it: "rejeição", not "rejeicao".
        written = {"".join(name_words(w)): w.lower() for w in re.findall(r"\w+", question)}
        phrase = " ".join(written.get(w, w) for w in words)
        # It says "customer rating" whole: not also "no customer column".
        missing = [c for c in missing if not c.asks & set(words)]
        missing.append(_Concept(frozenset(words), frozenset(words), phrase, phrase, quantity=True))
    said = {w for c in missing for w in c.asks}
    missing += [c for c in _which_missing(question, profile, values) if not c.asks & said]
    return missing


# "average X", "total de X", "X médio": the quantity a question asks for, in its own words.
_QUANTITY_BEFORE = frozenset(
    {"average", "avg", "mean", "median", "media", "mediana", "soma", "taxa", "indice"}
)
# "a idade média", "the bounce rate": the word before names the quantity.
_QUANTITY_AFTER = frozenset({"medio", "media", "medios", "medias", "rate", "rates", "ratio"})
_SKIPPED = frozenset(
    {"a", "o", "as", "os", "the", "de", "do", "da", "dos", "das", "of", "our", "nosso", "nossa",
     "nossos", "nossas", "each", "cada", "um", "uma", "an",
     # "a média mensal de faturamento": the grain of the average, not the quantity.
     "mensal", "mensais", "semanal", "semanais", "diario", "diaria", "diarios", "diarias",
     "anual", "anuais", "trimestral", "monthly", "weekly", "daily", "yearly", "annual",
     "quarterly"}
)  # fmt: skip
_ENDS = frozenset(
    {"how", "many", "much", "quantos", "quantas", "quanto", "quanta",
     "for", "per", "by", "in", "on", "across", "over", "and", "or", "por", "para", "em", "no",
     "na", "nos", "nas", "e", "ou", "entre", "between", "is", "was", "are", "foi", "tem",
     "has", "have", "dos", "das", "do", "da", "of", "de", "with", "com", "at", "from", "to",
     "que", "which", "this", "last", "este", "esta", "ultimo", "ultima", "month", "mes", "year",
     "ano", "week", "semana", "day", "dia"}
)  # fmt: skip
# Words any quantity may go by, or that name the rows themselves: never "a missing column".
_ANY_QUANTITY = frozenset(
    {"value", "values", "valor", "valores", "number", "numero", "amount", "quantity",
     "quantidade", "total", "count", "contagem", "ticket", "size", "tamanho", "level", "nivel",
     "row", "rows", "linha", "linhas", "registro", "registros", "record", "records", "all",
     "todos", "todas", "geral", "overall", "it", "isso", "them", "everything", "tudo"}
)  # fmt: skip


def _asked_quantities(question: str) -> list[list[str]]:
    """The quantities ``question`` asks the average or sum of, as their words (up to two):
    ``average customer rating for each carrier`` -> ``customer rating``; ``a idade média
    dos funcionários`` -> ``idade``; ``média de idade`` -> ``idade``."""
    words = name_words(compounds(fold(question)))
    out: list[list[str]] = []
    for i, word in enumerate(words):
        taken: list[str] = []
        if word in _QUANTITY_BEFORE:
            j = i + 1
            while j < len(words) and words[j] in _SKIPPED and len(taken) == 0:
                j += 1
            # "a taxa média": "média" says how the rate is taken, not what it is of.
            stops = _ENDS | _SKIPPED | _QUANTITY_AFTER | _QUANTITY_BEFORE
            while j < len(words) and len(taken) < 2 and words[j] not in stops:
                taken.append(words[j])
                j += 1
        before = _ENDS | _SKIPPED | _QUANTITY_BEFORE  # "the average rate": no quantity named
        if word in _QUANTITY_AFTER and i > 0 and words[i - 1] not in before:
            taken = [words[i - 1]]
            after = words[i + 2] if i + 2 < len(words) else ""
            if words[i + 1 : i + 2] in (["de"], ["do"], ["da"]) and after not in _ENDS | _SKIPPED:
                # "tempo médio de atendimento": the time of handling, not any time.
                taken = [words[i - 1], words[i + 1], after]
        if taken and not any(w.isdigit() for w in taken):
            out.append(taken)
    return out


_WHICH = frozenset({"which", "qual", "quais"})
# Words after "which" that are no kind of segment: verbs, pronouns, period words.
_NOT_A_SEGMENT = frozenset(
    {"one", "ones", "of", "is", "was", "are", "were", "has", "had", "have", "do", "does", "did",
     "will", "would", "can", "could", "should", "sold", "made", "got", "grew", "fell", "e", "foi",
     "foram", "era", "sao", "tem", "teve", "tiveram", "esta", "estao", "vai", "deve", "mais",
     "menos", "maior", "menor", "melhor", "pior", "the", "these", "those", "this", "that",
     "o", "a", "os", "as", "um", "uma", "dos", "das", "de", "da", "percentual", "valor",
     "total", "value", "amount", "number", "numero", "quantidade", "taxa", "rate", "share",
     "parte", "part", "kind", "type", "tipo", "categoria", "category", "segment", "segmento",
     "item", "items", "thing", "coisa"}
)  # fmt: skip
_PERIOD_NOUNS = frozenset(
    {"day", "days", "dia", "dias", "week", "weeks", "semana", "semanas", "month", "months",
     "mes", "meses", "quarter", "quarters", "trimestre", "trimestres", "year", "years", "ano",
     "anos", "hour", "hours", "hora", "horas", "weekday", "date", "data", "period", "periodo",
     "semestre", "semester", "time", "vez"}
)  # fmt: skip


def _which_nouns(question: str) -> list[str]:
    """The kind of segment a question asks to pick among ("Which agent handled the most
    calls?" -> ``agent``; "qual agente atendeu mais?" -> ``agente``), when the word after
    "which"/"qual" is a noun: not a verb, a pronoun, an article or a period."""
    words = name_words(question)
    out = []
    for i, word in enumerate(words[:-1]):
        noun = words[i + 1]
        if word not in _WHICH or noun in _NOT_A_SEGMENT or noun in _PERIOD_NOUNS:
            continue
        if len(noun) < 3 or noun.isdigit() or noun.endswith(("ed", "ou", "eu", "iu")):
            continue
        out.append(noun)
    return out


def _same_word(a: str, b: str) -> bool:
    """Whether two words are one, a plural of the other or synonyms ("agents", "agente")."""
    forms_a, forms_b = variants(a), variants(b)
    if forms_a & forms_b:
        return True
    groups = frozenset().union(*(synonym_groups(f) for f in forms_a))
    return any(synonym_groups(f) & groups for f in forms_b)


def _which_missing(question: str, profile: Profile, values: set[str]) -> list[_Concept]:
    """A kind of segment asked for by "which" that the data only counts ("agents_logged" is
    how many agents were logged in, not which one)."""
    visible = [c for c in profile.columns if not c.masked]
    out = []
    for noun in _which_nouns(question):
        if noun in values or variants(noun) & values:
            continue
        named = [profile.column(n) for n in named_columns(noun, profile, any_word=True)]
        kinds = {c.kind for c in named if c is not None}
        if kinds - {"numeric"}:
            continue  # a column of segments, ids or dates holds it
        counts = [
            c.name for c in named if c is not None and _same_word(name_words(c.name)[0], noun)
        ]
        if not counts:
            # "which revenue" is a quantity; "which restaurant" may well be the ``unidade``
            # column under another name: only a count of the noun shows its segments are not
            # in the data.
            continue
        if not visible:
            continue
        written = {"".join(name_words(w)): w.lower() for w in re.findall(r"\w+", question)}
        said = written.get(noun, noun)
        out.append(
            _Concept(frozenset({noun}), frozenset({noun}), said, said, which=True, counted=counts)
        )
    return out


def _has_temporal(concept: _Concept, columns: Sequence[ColumnProfile]) -> bool:
    return concept.temporal and any(c.kind == "temporal" for c in columns)


def _missing_sentence(concept: _Concept, pt: bool) -> Sentence:
    if concept.which:
        counted = ", ".join(concept.counted)
        if pt:
            text = (
                f"Os dados não separam os números por {concept.pt}: não têm coluna de {concept.pt}"
            )
            text += f" (só {counted}, uma contagem)." if counted else "."
        else:
            text = f"The data does not break the numbers down by {concept.en}: it has no "
            text += f"{concept.en} column"
            text += f" (only {counted}, a count)." if counted else "."
        return Sentence(text, [], "missing")
    if pt:
        return Sentence(f"Os dados não têm uma coluna de {concept.pt}.", [], "missing")
    return Sentence(f"The data has no {concept.en} column.", [], "missing")


# What each kind of part asks for, to say plainly that it could not be answered.
_PART_NAMES = {
    "rank": ("qual é o maior ou o menor", "which is highest or lowest"),
    "total": ("o total", "the total"),
    "trend": ("a evolução ao longo do tempo", "the change over time"),
    "anomaly": ("se houve quedas ou picos", "whether there were drops or spikes"),
    "compare_periods": ("a comparação entre períodos", "the comparison between periods"),
    "compare_segments": ("a comparação entre {words}", "the comparison between {words}"),
    "share": ("a participação de cada parte", "the share of each part"),
    "drivers": ("o que explica a variação", "what drove the change"),
    "filter": ("o recorte {words}", "the restriction to {words}"),
}
_NEEDS_TIME = frozenset({"trend", "anomaly", "compare_periods", "drivers"})
_NEEDS_SEGMENTS = frozenset({"rank", "share", "compare_segments"})


def _uncovered_sentence(part: dict[str, Any], ctx: Context) -> Sentence:
    pt_name, en_name = _PART_NAMES.get(part["kind"], ("esta parte", "this part"))
    name = (pt_name if ctx.pt else en_name).format(words=part.get("words", ""))
    visible = [c for c in ctx.profile.columns if not c.masked]
    reason = ""
    if part["kind"] in _NEEDS_TIME and not any(c.kind in ("temporal", "ordinal") for c in visible):
        reason = (
            " (os dados não têm coluna de data)" if ctx.pt else " (the data has no date column)"
        )
    elif part["kind"] in _NEEDS_SEGMENTS and not any(c.kind == "categorical" for c in visible):
        reason = (
            " (os dados não têm coluna de categoria para comparar)"
            if ctx.pt
            else " (the data has no category column to compare)"
        )
    if ctx.pt:
        return Sentence(f"Não consegui responder a esta parte: {name}{reason}.", [], "uncovered")
    return Sentence(f"I could not answer this part: {name}{reason}.", [], "uncovered")


def _peak_sentences(
    parts: Sequence[dict[str, Any]], planned: Sequence[Fact], ctx: Context, low: bool
) -> list[Sentence]:
    """For "qual foi o melhor mês?": the period with the highest (or lowest) value of the
    series, read from the trend fact's rows."""
    if not any(p["kind"] == "peak" for p in parts):
        return []
    trend = next((f for f in planned if f.kind == "trend" and f.rows), None)
    if trend is None:
        return []
    label = next(k for k in trend.rows[0] if k != "period")
    rows = [r for r in trend.rows if isinstance(r[label], int | float)]
    if not rows:
        return []
    best = (min if low else max)(rows, key=lambda r: float(r[label] or 0))
    metric = metric_of(label, trend, ctx)
    grain = _grain_of(trend)
    when = ctx.formats.when(best["period"], grain)
    amount = metric.amount(best[label], ctx)
    if ctx.pt:
        word = "menor" if low else "maior"
        text = f"O {word} valor d{metric.subject(ctx)} foi {when}: {amount}."
    else:
        word = "lowest" if low else "highest"
        text = f"The {word} {metric.subject(ctx)} was {when}: {amount}."
    return [Sentence(text, [trend.id])]


def _growth_sentences(
    parts: Sequence[dict[str, Any]], planned: Sequence[Fact], ctx: Context
) -> list[Sentence]:
    """For "which fuel grew the most from January to March?" (a ranking of how segments
    moved): the segment whose own change was the largest in percent, read from the change
    fact's rows (the largest in money, which drove the total, is the change fact's own
    sentence); a "none grew" when none did."""
    moved = next((p.get("moved") for p in parts if p["kind"] == "rank" and p.get("moved")), None)
    if moved is None:
        return []
    grew, fell = moved == "up", moved == "down"
    change = next((f for f in planned if f.kind == "change" and len(f.rows) > 1), None)
    if change is None or not change.values.get("dimension"):
        return []
    pcts = [
        (float(pct), row)
        for row in change.rows
        if isinstance(pct := row.get("change_pct"), int | float)
    ]
    if not pcts:
        return []
    pct, best = (max if grew else min)(pcts, key=lambda pair: pair[0])
    metric = Metric(str(change.values.get("measure")), str(change.values.get("agg") or "sum"))
    grain = str(change.values.get("grain"))
    since = ctx.formats.when(compared(change.values, "a"), grain)
    until = ctx.formats.when(compared(change.values, "b"), grain)
    first, last = metric.amount(best["value_a"], ctx), metric.amount(best["value_b"], ctx)
    name = ctx.formats.label(best["segment"])
    size = f"{'+' if pct > 0 else '−' if pct < 0 else ''}{ctx.formats.pct(abs(pct))}"
    dim = str(change.values["dimension"])
    if ctx.pt:
        if grew and pct <= 0:
            lead = f"{cap(none_pt(dim))} {dim} cresceu; o que menos caiu foi {name}"
        elif fell and pct >= 0:
            lead = f"{cap(none_pt(dim))} {dim} caiu; o que menos cresceu foi {name}"
        else:
            lead = cap(f"{name} foi o que mais {'cresceu' if grew else 'caiu'}")
        text = f"{lead}: {size} n{metric.subject(ctx)}, de {first} {since} para {last} {until}."
    else:
        if grew and pct <= 0:
            lead = f"No {dim} grew; {name} fell the least"
        elif fell and pct >= 0:
            lead = f"No {dim} fell; {name} grew the least"
        else:
            lead = cap(f"{name} {'grew' if grew else 'fell'} the most")
        text = f"{lead}: {size} in {metric.subject(ctx)}, from {first} {since} to {last} {until}."
    return [Sentence(text, [change.id])]


def _moved_sentences(
    parts: Sequence[dict[str, Any]], planned: Sequence[Fact], ctx: Context
) -> list[Sentence]:
    """For "did its volume grow from October to November?": yes or no first, read from the
    change fact's own percentage (its sentence, after, says from what to what)."""
    moved = next(
        (p.get("moved") for p in parts if p["kind"] == "compare_periods" and p.get("moved")),
        None,
    )
    change = next((f for f in planned if f.kind == "change"), None)
    if moved is None or change is None or any(p["kind"] == "anomaly" for p in parts):
        # "As vendas caíram de março para abril?" is also read as a question of drops,
        # whose fact says yes or no first.
        return []
    pct = change.values.get("change_pct")
    if not isinstance(pct, int | float) or isinstance(pct, bool):
        return []
    size = ctx.formats.pct(abs(float(pct)))
    went = "up" if pct > 0 else "down" if pct < 0 else "flat"
    yes = went == moved
    if ctx.pt:
        how = {"up": f"cresceu {size}", "down": f"caiu {size}", "flat": "ficou estável"}[went]
        text = f"{'Sim' if yes else 'Não'}: {how}."
    else:
        how = {"up": f"it grew {size}", "down": f"it fell {size}", "flat": "it stayed flat"}[went]
        text = f"{'Yes' if yes else 'No'}: {how}."
    return [Sentence(text, [change.id])]


# "O jantar fatura mais que o almoço?", "do women earn less than men?": the first value named
# is said to be above (below) the second ("mais clientes do que", "more customers than").
_ABOVE = re.compile(
    r"\b(?:mais|maior|more|higher|greater|bigger|larger)\s+(?:[a-z]+\s+){0,3}?(?:que|than)\b"
)
_BELOW = re.compile(
    r"\b(?:menos|menor|less|lower|fewer|smaller)\s+(?:[a-z]+\s+){0,3}?(?:que|than)\b"
)


_DIFFERENCE = frozenset({"diferenca", "difference", "differ", "differs", "gap", "diferem"})


def _versus_sentences(
    question: str, parts: Sequence[dict[str, Any]], planned: Sequence[Fact], ctx: Context
) -> list[Sentence]:
    """For two values of one column compared ("Jantar e Almoço", "homens e mulheres"): the
    first against the second in the ranking's measure, with how much more or less; yes or no
    first when the question asks whether the first is above (below) the other."""
    part = next(
        (
            p
            for p in parts
            if p["kind"] == "compare_segments"
            and not p.get("others")
            and len(p.get("values") or []) == 2
        ),
        None,
    )
    if part is None:
        return []
    column = str(part["column"])
    fact = next(
        (f for f in planned if f.kind == "breakdown" and f.rows and column in f.rows[0]), None
    )
    if fact is None:
        return []
    keys = [k for k in fact.rows[0] if k not in (column, "share_pct")]
    rows = [next((r for r in fact.rows if str(r[column]) == str(v)), None) for v in part["values"]]
    if not keys or rows[0] is None or rows[1] is None:
        return []
    first, second = rows[0][keys[0]], rows[1][keys[0]]
    if not isinstance(first, int | float) or not isinstance(second, int | float) or not second:
        return []
    metric = metric_of(keys[0], fact, ctx)
    folded = fold(question)
    claimed = "above" if _ABOVE.search(folded) else "below" if _BELOW.search(folded) else None
    if claimed is None and set(name_words(question)) & _DIFFERENCE:
        claimed = "different"  # "Existe diferença salarial entre homens e mulheres?"
    polar = claimed is not None and not set(name_words(question)[:1]) & OPEN_STARTS
    pct = (float(first) - float(second)) / abs(float(second)) * 100
    size = ctx.formats.pct(abs(pct))
    a, b = ctx.formats.label(rows[0][column]), ctx.formats.label(rows[1][column])
    amount_a, amount_b = metric.amount(first, ctx), metric.amount(second, ctx)
    yes = {"above": pct > 0, "below": pct < 0}.get(claimed or "", first != second)
    if ctx.pt:
        lead = f"{'Sim' if yes else 'Não'}: " if polar else ""
        how = "igual" if pct == 0 else f"{size} a {'mais' if pct > 0 else 'menos'}"
        text = f"{lead}n{metric.subject(ctx)}, {a} tem {amount_a} contra {amount_b} de {b} ({how})."
    else:
        lead = f"{'Yes' if yes else 'No'}: " if polar else ""
        how = "the same" if pct == 0 else f"{size} {'more' if pct > 0 else 'less'}"
        text = (
            f"{lead}in {metric.subject(ctx)}, {a} has {amount_a} against {amount_b} for {b} "
            f"({how})."
        )
    return [Sentence(cap(text), [fact.id])]


def _focus_sentences(
    parts: Sequence[dict[str, Any]], planned: Sequence[Fact], ctx: Context
) -> list[Sentence]:
    """For "what share came from Sul?": Sul's share, read from the ranking's row for it."""
    out = []
    for part in parts:
        if part["kind"] != "share":
            continue
        for column, values in (part.get("focus") or {}).items():
            for fact in planned:
                if fact.kind != "breakdown" or not fact.rows or column not in fact.rows[0]:
                    continue
                keys = [k for k in fact.rows[0] if k not in (column, "share_pct")]
                if "share_pct" not in fact.rows[0] or not keys:
                    continue
                metric = metric_of(keys[0], fact, ctx)
                for value in values:
                    row = next((r for r in fact.rows if str(r[column]) == str(value)), None)
                    if row is None:
                        continue
                    share = ctx.formats.pct(row["share_pct"])
                    amount = metric.amount(row[keys[0]], ctx)
                    name = ctx.formats.label(row[column])
                    text = (
                        f"{name} responde por {share} d{metric.subject(ctx)} ({amount})."
                        if ctx.pt
                        else f"{name} accounts for {share} of {metric.subject(ctx)} ({amount})."
                    )
                    out.append(Sentence(text, [fact.id]))
                break
    return out


# "Quantas consultas", "how many appointments", "a mais faltas", "the most cancellations":
# the plural noun after a word of counting.
_COUNTED = re.compile(
    r"\b(?:quant[oa]s|how\s+many|n[uú]mero\s+de|number\s+of|mais|menos|most|fewest|more|"
    r"fewer)\s+([^\W\d_]{3,}s)\b",
    re.IGNORECASE,
)


def noun_word(noun: str) -> str:
    """A noun as a column word: folded, one word ("no-shows" -> "noshows")."""
    return "".join(name_words(noun))


def counted_noun(question: str, language: str) -> str | None:
    """The plural noun ``question`` counts, as written (lower case), when the question is in
    ``language`` ("pt" or "en"): what the answer calls the rows it counts."""
    if guess_language(question) not in (language, None):
        return None
    found = _COUNTED.search(question)
    if found is None:
        return None
    noun = found.group(1).lower()
    return None if noun_word(noun) in _NOT_COUNTED else noun


# Plural words after "mais"/"most" that are no things counted.
_NOT_COUNTED = frozenset(
    {"vezes", "times", "vendas", "sales", "dias", "days", "horas", "hours", "reais", "dollars"}
)


def build_answer(
    *,
    question: str | None,
    facts: Sequence[Fact],
    ctx: Context,
    most: int = 3,
    parts: Sequence[dict[str, Any]] = (),
) -> Answer:
    """The answer to ``question`` from ``facts`` (``ctx.planned`` holds the ids the question's
    plan produced), in ``ctx``'s language; see the module docstring for what it says."""
    pt = ctx.pt
    missing = missing_columns(question, ctx.profile) if question else []
    if question and ctx.rows is None and ctx.plan is not None:
        # The rows counted are called what the question calls them when that names the
        # value they were kept for ("mais faltas": ``status`` Faltou); any other noun is no
        # claim the rows can back ("how many teachers?" on a table of fees).
        noun = counted_noun(question, "pt" if pt else "en")
        kept = [
            w
            for f in ctx.plan.filters
            if f.op == "=" and isinstance(f.value, str)
            for w in name_words(f.value)
        ]
        if noun is not None and any(ratios._stems_meet(noun_word(noun), w) for w in kept):
            ctx = replace(ctx, rows=noun)
    sentences: list[Sentence] = []
    planned = [f for f in facts if f.id in ctx.planned]
    if question and not planned:
        # What the data lacks comes first: it is the answer; then what the data does say.
        sentences += [_missing_sentence(c, pt) for c in missing]
        if missing:
            lead = (
                "Estes são os fatos mais relevantes dos dados.",
                "These are the data's most notable facts.",
            )
        else:
            lead = (
                "A pergunta não corresponde a nenhuma coluna dos dados; estes são os fatos "
                "mais relevantes.",
                "The question matches none of the data's columns; these are the most "
                "notable facts.",
            )
        sentences.append(Sentence(lead[0] if pt else lead[1], [], "unmatched"))
    # A question about drops or spikes is answered yes or no before anything else, then what
    # explains a change.
    planned.sort(key=lambda f: (f.kind != "anomaly", f.kind != "change"))
    chosen = planned or list(facts[:most])
    sentences += _growth_sentences(parts, planned, ctx)
    sentences += _moved_sentences(parts, planned, ctx)
    sentences += _versus_sentences(question or "", parts, planned, ctx)
    spans: set[str] = set()  # "the data runs from ... to ...", said once
    for fact in chosen:
        text, tail = describe(fact, ctx), span(fact, ctx)
        if tail and tail in spans and text.endswith(tail):
            text = text[: -len(tail)]
        spans.add(tail)
        sentences.append(Sentence(text, [fact.id]))
    sentences += _focus_sentences(parts, planned, ctx)
    low = ctx.plan is not None and ctx.plan.order == "asc"
    sentences += _peak_sentences(parts, planned, ctx, low)
    if question and planned:
        sentences += [_missing_sentence(c, pt) for c in missing]
    if question and not missing:
        # With a column missing, that is why a part went unanswered, and it was said.
        for part in parts:
            if not part["covered"]:
                sentences.append(_uncovered_sentence(part, ctx))
    return Answer("pt-BR" if pt else "en", sentences, list(parts))


def write_answer(
    *,
    question: str | None,
    facts: Sequence[Fact],
    ctx: Context,
    most: int,
    parts: Sequence[dict[str, Any]] = (),
) -> Answer:
    """The answer, after rewriting every fact's statement in ``ctx``'s language (the values
    stay as computed): the model reads the statements, so it reads them in the language it
    writes, and the verifier reads them in that language too."""
    for fact in facts:
        fact.statement = describe(fact, ctx)
    return build_answer(question=question, facts=facts, ctx=ctx, most=most, parts=parts)
