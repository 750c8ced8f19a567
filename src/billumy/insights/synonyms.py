"""Words of a question, folded: lower case, no accents, each with its possible singulars
(:func:`variants`), and the synonym groups of common business words in English and
Portuguese (:func:`synonym_groups`), through which a question word matches a column word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

__all__ = [
    "overlap",
    "same_word_across_languages",
    "synonym_groups",
    "variants",
]


def _fold(text: str) -> str:
    bare = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return bare.lower()


_PLURALS = (("oes", "ao"), ("aes", "ao"), ("ies", "y"), ("ais", "al"), ("eis", "el"), ("ns", "m"))


def synonym_groups(word: str) -> frozenset[int]:
    """The synonym groups ``word`` (folded, singular) belongs to."""
    return _SYNONYM_GROUPS.get(word, frozenset())


# Endings that differ between Portuguese words and their English cognates ("precisão" and
# "precision", "agricultura" and "agriculture", "qualidade" and "quality", "energia" and
# "energy"), longest first: the stems left must be the same.
_COGNATE_ENDINGS = (
    "tions", "coes", "soes", "idade", "tion", "sion", "cao", "sao", "dade", "ical", "ity", "ion",
    "ura", "ics",
    "ure", "ario", "aria", "ary", "ivo", "iva", "ive", "ico", "ica", "ic", "ao", "ia", "ty",
    "y", "o", "a", "e", "s",
)  # fmt: skip


def _cognate_stem(word: str) -> str:
    """The stem left without the ending, with English's Greek spellings as Portuguese writes
    them ("orthopedics" and "ortopedia", "pharmacy" and "farmácia")."""
    ending = next((e for e in _COGNATE_ENDINGS if word.endswith(e) and len(word) > len(e) + 3), "")
    return word[: len(word) - len(ending)].replace("th", "t").replace("ph", "f")


def one_edit(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by one substitution, insertion or deletion."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def cognates(a: str, b: str) -> bool:
    """Whether two folded words of six letters or more are a Portuguese-English cognate pair
    with a stem of five letters or more ("maternidade"/"maternity", "pediatria"/"pediatrics")."""
    if len(a) < 6 or len(b) < 6:
        return False
    stem = _cognate_stem(a)
    return len(stem) >= 5 and stem == _cognate_stem(b)


def same_word_across_languages(a: str, b: str) -> bool:
    """Whether two folded words are one word, a plural of it, a synonym, a close prefix
    ("client"/"cliente") or a Portuguese-English cognate ("precisao"/"precision")."""
    if a == b or variants(a) & variants(b):
        return True
    if any(synonym_groups(x) & synonym_groups(y) for x in variants(a) for y in variants(b)):
        return True
    if _prefixed(a, b):
        return True
    stem = _cognate_stem(a)
    return len(stem) >= 4 and stem == _cognate_stem(b)


def overlap(text: str, words: Iterable[str]) -> int:
    """How much of ``text`` names ``words`` (a table's and its columns' words): for each word
    of the text, 2 when it is one of them (plurals aside), 1 for a synonym or a close prefix,
    0 otherwise; summed."""
    wanted = sorted({w for w in (_fold(x) for x in words) if len(w) > 2})
    total = 0
    for token in _tokens(text):
        groups = _groups(token)
        total += max((_word_match(token, groups, w) for w in wanted), default=0)
    return total


def variants(word: str) -> frozenset[str]:
    """``word`` and its possible singulars (see :func:`_variants`)."""
    return _variants(word)


def _variants(word: str) -> frozenset[str]:
    """The word and its possible singulars (English and Portuguese): ``regioes`` ->
    ``regiao``, ``valores`` -> ``valor``, ``trimestres`` -> ``trimestre``."""
    out = {word}
    for plural, singular in _PLURALS:
        # "pães" -> "pão", "mães" -> "mão": one letter before -ães/-ões is enough.
        least = len(plural) if singular == "ao" else len(plural) + 1
        if word.endswith(plural) and len(word) > least:
            out.add(word[: -len(plural)] + singular)
    if word.endswith("ed") and len(word) > 5:  # "churned" -> "churn", "changed" -> "change"
        out.update((word[:-2], word[:-1]))
    if word.endswith("s") and len(word) > 3 and not word.endswith("ss"):
        out.add(word[:-1])
        if word.endswith("es") and len(word) > 4:
            out.add(word[:-2])
    return frozenset(out)


def _tokens(text: str) -> list[frozenset[str]]:
    return [_variants(w) for w in re.findall(r"[a-z0-9]+", compounds(_fold(text)))]


_COMPOUNDS = re.compile(r"(?<![a-z0-9])no[^a-z0-9]+show")
_ON_TIME = re.compile(r"(?<![a-z0-9])on[^a-z0-9]+time(?![a-z0-9])")


def compounds(folded: str) -> str:
    """Folded text with words written apart that are one word joined: "no-show", "no show",
    ``no_shows`` -> "noshow"; "on-time", "on time" -> "ontime"."""
    return _ON_TIME.sub("ontime", _COMPOUNDS.sub("noshow", folded))


def _find(tokens: list[frozenset[str]], words: list[str]) -> int:
    """Where ``words`` appear in a row in ``tokens`` (plurals matching singulars), or -1."""
    wanted = [_variants(w) for w in words]
    if not wanted:
        return -1
    for start in range(len(tokens) - len(wanted) + 1):
        if all(tokens[start + i] & w for i, w in enumerate(wanted)):
            return start
    return -1


def _lookup(tokens: list[frozenset[str]], table: dict[str, Any]) -> Any:
    return next((table[v] for t in tokens for v in sorted(t) if v in table), None)


# Common business words, English and Portuguese (folded, singular): a question word matches a
# column word of the same group. A word may sit in several groups ("receita" is revenue and
# sales). Single words only: a column "Receita Líquida" still needs both its words named.
# Words of losing people or customers: an exit (HR) and a cancellation (churn) alike.
_LOSING = ("lose", "lost", "losing", "perdeu", "perdemos", "perda", "perdas")
_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("revenue", "receita", "faturamento", "income", "renda", "mrr", "arr"),
    ("sales", "sale", "venda", "receita", "faturamento"),
    ("amount", "value", "valor", "montante"),
    ("region", "regiao", "regional"),
    ("month", "mes"),
    ("year", "ano"),
    ("quarter", "trimestre"),
    ("week", "semana"),
    ("day", "dia"),
    ("date", "data", "dt"),
    ("unit", "unidade", "quantity", "quantidade", "qty", "qtd", "qtde"),
    ("customer", "client", "cliente", "consumidor"),
    ("product", "produto", "item"),
    ("store", "shop", "loja"),
    ("building", "predio", "edificio"),
    ("icu", "uti", "cti"),  # intensive care: unidade de terapia intensiva
    ("tower", "torre"),
    ("channel", "canal"),
    ("category", "categoria"),
    ("price", "preco"),
    ("cost", "custo", "expense", "despesa", "gasto", "spend", "spent", "spending"),
    ("profit", "lucro"),
    ("margin", "margem"),
    ("order", "pedido"),
    ("visit", "visita"),
    ("signup", "cadastro", "registration", "inscricao"),
    ("priority", "prioridade"),
    ("satisfaction", "satisfacao", "csat"),
    ("source", "origem", "fonte"),
    ("city", "cidade", "municipio", "municipality", "town"),
    ("neighborhood", "neighbourhood", "bairro", "district"),
    ("gym", "academia"),
    ("coupon", "cupom", "voucher"),
    ("ontime", "prazo", "pontual", "punctual", "pontualidade", "punctuality"),
    ("active", "ativo", "ativa"),
    ("platform", "plataforma"),
    ("rating", "avaliacao", "review"),
    ("state", "estado", "uf"),
    ("country", "pais"),
    ("seller", "vendedor", "salesperson"),
    ("employee", "funcionario", "colaborador"),
    ("department", "departamento", "setor"),
    ("status", "situacao"),
    ("ticket", "chamado"),
    ("discount", "desconto"),
    ("hour", "hora", "horario"),
    ("age", "idade"),
    ("gender", "genero", "sexo"),
    ("genre", "genero"),  # gênero is both: a book's genre and a person's gender
    ("copy", "exemplar", "volume"),
    ("book", "livro", "title", "titulo", "obra"),
    # places, as stores and branches are named after them ("the airport store")
    ("airport", "aeroporto"),
    ("downtown", "centro", "center", "centre"),
    ("mall", "shopping"),
    ("beach", "praia"),
    ("north", "norte"),
    ("south", "sul"),
    ("east", "leste"),
    ("west", "oeste"),
    ("station", "estacao", "rodoviaria"),
    ("harbor", "harbour", "porto"),
    ("brand", "marca"),
    ("supplier", "fornecedor"),
    ("payment", "pagamento"),
    # "forma de pagamento" for ``payment_method``
    ("method", "metodo", "forma", "modalidade"),
    ("freight", "frete", "shipping"),
    ("type", "tipo"),
    ("segment", "segmento"),
    ("resolution", "resolucao"),
    ("appointment", "consulta", "agendamento", "atendimento"),
    ("patient", "paciente"),
    ("doctor", "medico", "physician"),
    ("specialty", "especialidade", "speciality"),
    ("plan", "plano"),
    ("unit", "unitario"),
    ("branch", "filial", "unidade", "location", "local", "site", "agencia", "agencias"),
    # people and HR
    ("employee", "funcionario", "colaborador", "headcount", "staff"),
    ("hire", "contratacao", "contratar", "contratou", "contratamos", "admissao", "hiring"),
    (
        "exit",
        "saida",
        "desligamento",
        "demissao",
        "left",
        "leaver",
        "attrition",
        "turnover",
        "sairam",  # "quantas pessoas saíram"
        "saiu",
        "saimos",
        *_LOSING,
    ),
    ("payroll", "folha", "salario", "salary", "wage", "salarial", "salariais", "remuneracao"),
    ("team", "equipe", "department", "departamento", "area", "setor"),
    # returns and logistics
    (
        "return",
        "returns",
        "devolucao",
        "devolucoes",
        "devolvido",
        "devolvida",
        "returned",
        # "quais categorias devolvem mais?": the verb names the returns
        "devolvem",
        "devolveram",
        "devolveu",
        "devolver",
        "devolvemos",
    ),
    ("refund", "reembolso", "reembolsado", "estorno"),
    ("reason", "motivo", "causa"),
    ("defect", "defeito", "defeituoso"),
    ("stock", "estoque", "inventory", "inventario"),
    ("member", "membro", "aluno", "associado", "subscriber", "assinante"),
    (
        "cancellation",
        "cancelamento",
        "cancel",
        "cancelled",
        "canceled",
        "cancelou",
        "churn",
        "cancelaram",
        *_LOSING,
    ),
    ("spend", "gasto", "gastamos", "gastou", "investimento", "investido", "spent"),
    ("ad", "ads", "anuncio", "midia", "publicidade", "advertising", "marketing"),
    ("session", "sessao", "visita", "acesso"),
    # an appointment missed: "taxa de faltas" on a status ``Faltou``, "no-show" in English
    ("noshow", "falta", "faltou", "faltaram", "faltante", "ausencia", "ausente", "absent"),
    ("insurer", "insurance", "convenio", "operadora", "seguradora"),
    ("signup", "matricula", "enrollment", "inscricao", "adesao"),
    (
        "resolved",
        "resolve",
        "resolvido",
        "resolveu",
        "resolveram",
        "resolvemos",
        "closed",
        "close",
        "fechado",
        "fechou",
        "fecharam",
        "solved",
        "resolucao",
        "resolution",
    ),
    ("delay", "atraso", "lag"),
    ("late", "atrasado", "atrasada", "atrasadas", "atrasados", "overdue"),
    (
        "delivery",
        "entrega",
        "entregue",
        "entregou",
        "entregaram",
        "entregamos",
        "delivered",
        "shipment",
        "envio",
        "shipped",
    ),
    ("carrier", "transportadora", "shipper"),
    ("loss", "perda", "waste", "desperdicio", "quebra", "spoilage"),
    # schools and collections
    ("student", "aluno", "estudante", "pupil"),
    ("new", "novo", "nova", "novato", "novata"),
    ("enrolment", "enrollment", "matricula", "enrolled", "matriculado", "inscrito"),
    (
        "received",
        "recebido",
        "recebimento",
        "recebemos",
        "recebeu",
        "receberam",
        "receber",
        "collected",
        "collect",
        "collection",
        "arrecadado",
        "arrecadacao",
        "arrecadamos",
    ),
    ("billing", "billed", "faturado", "faturamento", "faturamos", "faturou", "faturar", "charges"),
    ("overdue", "inadimplencia", "inadimplente", "atraso", "delinquency", "late"),
    ("payment", "boleto"),
    ("campus", "unidade", "escola", "school"),
    # warehouses
    ("line", "linha"),
    (
        "pick",
        "picked",
        "picking",
        "separado",
        "separada",
        "separacao",
        "separar",
        "separamos",
        "separou",
    ),
    ("wave", "onda"),
    ("warehouse", "dc", "cd", "armazem", "deposito"),
    ("backlog", "pendente", "pendencia"),
    # call centers
    ("call", "ligacao", "chamada", "telefonema"),
    ("answered", "atendida", "atendido", "atendemos", "attended"),
    ("abandoned", "abandonada", "abandonado", "abandono", "abandonment", "desistencia"),
    ("offered", "incoming", "inbound", "entrante", "entrada", "entraram"),
    ("queue", "fila"),
    ("agent", "agente", "atendente", "operador"),
    ("wait", "espera", "waiting"),
    # hotels
    ("room", "quarto", "apartamento"),
    ("occupied", "ocupado", "ocupada", "diaria"),
    ("available", "disponivel", "capacity", "capacidade", "bookable", "sellable", "reservavel"),
    ("guest", "hospede"),
    ("occupancy", "ocupacao"),
    ("rental", "rentals", "locacao", "aluguel", "alugueis", "rent"),
    ("kg", "kilo", "kilos", "quilo", "quilos", "kilogram", "kilograms", "quilograma"),
    ("saca", "sacas", "sack", "sacks", "bag", "bags"),
    ("soja", "soy", "soybean", "soybeans"),
    ("milho", "corn", "maize"),
    ("trigo", "wheat"),
    ("feijao", "bean", "beans"),
    ("combustivel", "fuel", "fuels"),
    ("etanol", "ethanol", "alcool"),
    ("gasolina", "gasoline", "gas", "petrol"),
    ("posto", "station", "stations"),
    ("litro", "litros", "liter", "liters", "litre", "litres"),
    ("corrida", "corridas", "trip", "trips", "ride", "rides", "viagem", "viagens"),
    ("concluida", "concluidas", "concluido", "concluidos", "completed", "finalizada", "finished"),
    ("distancia", "distance", "miles", "milhas", "mileage", "quilometragem"),
    ("abastecimento", "abastecimentos", "fillup", "fillups", "refuel", "refuels"),
    ("pao", "bread", "breads"),
    ("bolo", "cake", "cakes", "torta"),
    ("doce", "pastry", "pastries", "confeitaria", "salgado"),
    ("sanduiche", "sandwich", "sandwiches", "lanche"),
    ("consulta", "consultation", "consultations", "appointment", "appointments"),
    ("cirurgia", "surgery", "surgeries", "operation", "operations"),
    ("falta", "faltas", "noshow", "noshows", "ausencia", "absence"),
    ("vacinacao", "vacina", "vacinas", "vaccination", "vaccinations", "vaccine", "vaccines"),
    (
        "internado",
        "internados",
        "internacao",
        "internacoes",
        "internamos",
        "internou",
        "hospitalized",
        "inpatient",
        "inpatients",
        "admission",
        "admissions",
        "admitted",
        "admit",
        "admits",
    ),
    ("alta", "altas", "discharge", "discharges", "discharged"),
    ("ocupacao", "occupancy"),
    # A hospital's census: the patients in its beds (occupied beds), counted each day.
    ("ocupado", "ocupados", "ocupada", "ocupadas", "occupied", "census", "censo"),
    ("leito", "leitos", "bed", "beds", "cama", "camas"),
    ("uti", "icu", "cti"),
    ("torre", "tower"),
    ("ala", "alas", "ward", "wards", "enfermaria", "enfermarias", "setor", "setores"),
    ("cobranca", "charges", "charge", "charged"),
    ("contrato", "contratos", "contract", "contracts"),
    ("emprestimo", "emprestimos", "loan", "loans", "credito", "credit"),
    ("pessoal", "personal"),
    ("consignado", "payroll"),  # crédito consignado: a loan paid from the payroll
    ("saldo", "saldos", "balance", "balances"),
    ("reparo", "reparos", "repair", "repairs", "conserto", "consertos"),
    # OS: "ordem de serviço", a work order
    ("os", "ordem", "ordens", "workorder", "workorders"),
    ("aberta", "abertas", "aberto", "abertos", "open", "opened"),
    # valor contratado: the amount lent on the contracts signed
    (
        "contratado",
        "contratada",
        "lend",
        "lent",
        "loaned",
        "emprestado",
        "emprestamos",
        "emprestou",
        "disbursed",
        "desembolsado",
    ),
    ("carteira", "portfolio", "outstanding", "book"),  # a loan book
    # On a loan book the rate (taxa_média_mensal) is the rate of interest.
    ("juros", "interest", "taxa"),  # saldo da carteira: the outstanding balance
    ("taxa", "rate"),  # "the average rate" for taxa_média_mensal
    ("taxa", "fee", "tarifa"),  # "delivery fees" for taxa_entrega
    ("feriado", "holiday", "holidays"),
    ("promo", "promocao", "promotion", "promotional", "promocional"),
    ("desperdicio", "wasted", "waste"),
    ("assado", "baked", "produzido", "produced"),
    ("grao", "grain", "grains", "cereal", "crop", "cultura", "commodity"),
    ("produtor", "producer", "farmer", "grower", "fazendeiro", "agricultor"),
    ("umidade", "moisture", "humidity"),
    ("cafe", "coffee"),
    ("booking", "bookings", "reserva", "reservas", "agendamento", "agendamentos"),
    # energy
    ("kwp", "kw", "mwp", "mw", "potencia", "power", "capacity", "capacidade"),
    ("energia", "energy"),
    ("peca", "pecas", "part", "parts", "spare"),
    ("servico", "servicos", "service", "services"),
    # "mão de obra" (valor_mao_de_obra) is what English calls labor
    ("obra", "labor", "labour", "workmanship"),
    ("tecnico", "tecnicos", "tecnica", "tecnicas", "technician", "technicians", "tech", "techs"),
    # an order's status, as a Django choices field stores it
    ("cancelado", "cancelada", "cancelled", "canceled"),
    ("pago", "paga", "paid"),
    ("entregue", "delivered"),
    ("pendente", "pending"),
    ("devolvido", "devolvida", "returned"),
    # marketing: a campaign's funnel
    ("campaign", "campanha"),
    ("conversion", "conversao", "converted", "convertido", "convertida"),
    ("click", "clique", "clicks", "cliques"),
    ("impression", "impressao", "views", "visualizacao", "exibicao"),
    # fleets: a vehicle is named by its plate
    ("vehicle", "veiculo", "truck", "caminhao", "van", "car", "carro", "plate", "placa"),
    ("driver", "motorista", "condutor"),
    ("route", "rota", "trajeto", "itinerario"),
    ("toll", "pedagio"),
    ("course", "curso"),
    ("shift", "turno"),
    ("tip", "tips", "gorjeta", "gratuity"),
    ("arrival", "chegada", "entrada"),
    ("stockout", "ruptura", "desabastecimento"),
    ("triage", "triagem", "classificacao"),
    ("level", "nivel", "grau"),
    ("wait", "espera", "waiting", "aguardando"),
    ("dish", "prato", "meal", "refeicao"),
    ("sold", "vendido", "vendida", "vendidos", "vendidas"),
    ("listing", "anuncio", "anunciado", "imovel", "property", "properties"),
    ("neighborhood", "bairro"),
    ("area", "metragem", "m2", "sqm", "sqft", "footage"),
    # a student who leaves a school: its churn
    ("dropout", "evasao", "evadido", "abandono", "churn"),
)
_SYNONYM_GROUPS: dict[str, frozenset[int]] = {}
for _group, _words in enumerate(_SYNONYMS):
    for _word in _words:
        _SYNONYM_GROUPS[_word] = _SYNONYM_GROUPS.get(_word, frozenset()) | {_group}


_PREFIX_MIN = 4  # a prefix of at least 4 letters ...
_PREFIX_SHARE = 0.75  # ... and 3/4 of the longer word ("client"/"cliente", not "custo"/"customer")


def _groups(variants: frozenset[str]) -> frozenset[int]:
    return frozenset().union(*(_SYNONYM_GROUPS.get(v, frozenset()) for v in variants))


def _prefixed(a: str, b: str) -> bool:
    short, long = sorted((a, b), key=len)
    return (
        len(short) >= _PREFIX_MIN
        and long.startswith(short)
        and len(short) >= _PREFIX_SHARE * len(long)
    )


def _word_match(token: frozenset[str], groups: frozenset[int], word: str) -> int:
    """2 when a question word is ``word`` (plurals aside), 1 when it is a synonym or a close
    prefix of it ("client"/"cliente"), 0 otherwise."""
    wanted = _variants(word)
    if token & wanted:
        return 2
    if groups & _groups(wanted):
        return 1
    if any(_prefixed(a, b) and not _agent_noun(a, b) for a in token for b in wanted):
        return 1
    return int(any(_same_verb(a, b) for a in token for b in wanted))


_AGENT_ENDINGS = ("er", "ers", "or", "ors")


def _agent_noun(a: str, b: str) -> bool:
    """Whether one word is the other with an agent's ending: "picked" (``pick``) does not name
    ``pickers`` (the people who pick), nor "visits" ``visitors``."""
    short, long = sorted((a, b), key=len)
    rest = long[len(short) :]
    return rest in _AGENT_ENDINGS or (short.endswith("e") and rest in ("r", "rs"))


# Portuguese verb endings ("concluímos", "vendeu", "abriram") and participle endings
# ("concluídas", "vendidos"), longest first: what is left is the verb's stem.
_VERB_ENDINGS = (
    "aram", "eram", "iram", "amos", "emos", "imos", "ou", "eu", "iu", "am", "em", "ar", "er",
    "ir", "e",
)  # fmt: skip
_PARTICIPLE_STEM_ENDINGS = ("ados", "adas", "idos", "idas", "ado", "ada", "ido", "ida")
# Participles that do not keep their verb's stem ("abertas" of "abrir").
_IRREGULAR_PARTICIPLES = {"abert": "abr", "entregu": "entreg"}


def _participle_stem(word: str) -> str | None:
    for ending in _PARTICIPLE_STEM_ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            return word[: -len(ending)]
    for head, stem in _IRREGULAR_PARTICIPLES.items():
        if word.startswith(head) and len(word) - len(head) <= 2:
            return stem
    return None


def _same_verb(question_word: str, name_word: str) -> bool:
    """Whether a verb of the question ("concluímos", "abrimos", "vendeu") is the verb of a
    participle in a column's name (``os_concluidas``, ``os_abertas``, ``litros_vendidos``)."""
    stem = _participle_stem(name_word)
    verb = next((e for e in _VERB_ENDINGS if question_word.endswith(e)), None)
    if stem is None or verb is None or stem == "vend":
        # Selling is read by the rules: "quanto vendemos?" asks for money, "quantos litros
        # vendemos?" for the litres.
        return False
    return question_word[: -len(verb)] == stem
