"""Unit tests for billumy.gotemplate, the Go text/template subset used for Ollama TEMPLATEs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from billumy import gotemplate
from billumy.engines.base import Generation
from billumy.engines.prompting import PromptBuilder
from billumy.errors import BadRequestError
from billumy.gotemplate import TemplateError, parse, render

CHATML = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n{{ .Response }}<|im_end|>"
)

LLAMA3 = """{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>
{{- if .System }}

{{ .System }}
{{- end }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>

{{ .Content }}{{ if not $last }}<|eot_id|>{{ end }}
{{- end }}
{{- end }}"""


def test_chatml_with_system() -> None:
    out = render(CHATML, {"System": "Be brief.", "Prompt": "Hi", "Response": ""})
    assert out == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n<|im_end|>"
    )


def test_chatml_without_system_key_renders_nothing_for_it() -> None:
    out = render(CHATML, {"Prompt": "Hi"})
    assert out == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<|im_end|>"


def test_chatml_with_response() -> None:
    out = render(CHATML, {"System": "", "Prompt": "Hi", "Response": "Hello!"})
    assert out == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>"


def test_llama3_messages_ending_with_user_opens_assistant_turn() -> None:
    data = {
        "System": "S",
        "Messages": [
            {"Role": "user", "Content": "a"},
            {"Role": "assistant", "Content": "b"},
            {"Role": "user", "Content": "c"},
        ],
    }
    assert render(LLAMA3, data) == (
        "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\na<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nb<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nc<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_llama3_last_assistant_message_is_left_open() -> None:
    data = {
        "Messages": [{"Role": "user", "Content": "a"}, {"Role": "assistant", "Content": "b"}],
    }
    assert render(LLAMA3, data) == (
        "<|start_header_id|>user<|end_header_id|>\n\na<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nb"
    )


def test_parse_once_render_many() -> None:
    tpl = parse("Hello {{ .Name }}!")
    assert tpl.render({"Name": "Ana"}) == "Hello Ana!"
    assert tpl.render({"Name": "Rui"}) == "Hello Rui!"
    assert tpl.render({}) == "Hello !"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("a  \n\t{{- 1 }}  b", "a1  b"),
        ("a  {{ 1 -}} \n\n b", "a  1b"),
        ("a \n {{- 1 -}} \n b", "a1b"),
        ("x {{-3}} y", "x -3 y"),  # "{{-" without a space is a negative number, not a trim
        ("a {{/* note */}} b", "a  b"),
        ("a \n{{- /* note */ -}}\n b", "ab"),
        ("{{- /* only */ -}}", ""),
    ],
)
def test_trim_markers_and_comments(template: str, expected: str) -> None:
    assert render(template, {}) == expected


@pytest.mark.parametrize(("n", "expected"), [(1, "one"), (2, "two"), (3, "many")])
def test_else_if_chain(n: int, expected: str) -> None:
    tpl = "{{ if eq .N 1 }}one{{ else if eq .N 2 }}two{{ else }}many{{ end }}"
    assert render(tpl, {"N": n}) == expected


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        ("", False),
        ([], False),
        ({}, False),
        (True, True),
        (-1, True),
        ("0", True),
        ([0], True),
        ({"a": None}, True),
    ],
)
def test_truthiness_follows_go(value: Any, truthy: bool) -> None:
    assert render("{{ if .V }}T{{ else }}F{{ end }}", {"V": value}) == ("T" if truthy else "F")


def test_missing_and_nested_missing_fields_are_empty() -> None:
    data = {"A": {"B": "x"}, "S": "str"}
    assert render("[{{ .Nope }}][{{ .A.Nope }}][{{ .Nope.Deeper }}][{{ .S.Field }}]", data) == (
        "[][][][]"
    )
    assert render("{{ .A.B }}", data) == "x"


def test_range_with_index_and_value_and_root() -> None:
    tpl = "{{ range $i, $m := .Items }}{{ $i }}={{ $m.Name }}@{{ $.Title }};{{ end }}"
    data = {"Title": "T", "Items": [{"Name": "a"}, {"Name": "b"}]}
    assert render(tpl, data) == "0=a@T;1=b@T;"


def test_range_single_variable_is_the_element_and_dot_too() -> None:
    assert render("{{ range $v := .L }}{{ $v }}{{ . }} {{ end }}", {"L": ["x", "y"]}) == "xx yy "


def test_range_else_for_empty_and_missing() -> None:
    tpl = "{{ range .L }}<{{ . }}>{{ else }}empty{{ end }}"
    assert render(tpl, {"L": [1, 2]}) == "<1><2>"
    assert render(tpl, {"L": []}) == "empty"
    assert render(tpl, {}) == "empty"


def test_range_over_map_is_in_key_order() -> None:
    tpl = "{{ range $k, $v := .M }}{{ $k }}:{{ $v }} {{ end }}"
    assert render(tpl, {"M": {"b": 2, "a": 1, "c": 3}}) == "a:1 b:2 c:3 "


def test_range_break_and_continue() -> None:
    tpl = (
        "{{ range .L }}{{ if eq . 2 }}{{ continue }}{{ end }}"
        "{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}"
    )
    assert render(tpl, {"L": [1, 2, 3, 4, 5]}) == "13"


def test_with_and_else() -> None:
    tpl = "{{ with .User }}{{ .Name }} ({{ $.Site }}){{ else }}anonymous{{ end }}"
    assert render(tpl, {"User": {"Name": "Ana"}, "Site": "s"}) == "Ana (s)"
    assert render(tpl, {"User": {}}) == "anonymous"
    assert render("{{ with $x := .A }}{{ $x }}{{ . }}{{ end }}", {"A": 7}) == "77"


def test_variables_declare_assign_and_field_access() -> None:
    tpl = (
        "{{ $x := 1 }}{{ $x }}{{ $x = 2 }}{{ $x }}"
        "{{ $m := .M }}{{ $m.K }}"
        '{{ $s := "" }}{{ range .L }}{{ $s = . }}{{ end }}{{ $s }}'
    )
    assert render(tpl, {"M": {"K": "k"}, "L": ["a", "b"]}) == "12kb"


def test_variable_declared_inside_if_is_scoped_to_it() -> None:
    with pytest.raises(TemplateError, match=r"undefined variable \$y"):
        parse("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}")


def test_pipelines_and_json() -> None:
    data = {"Tools": [{"name": "f", "args": {"x": "<a&b>"}}], "Name": 'Al "x"', "N": None}
    assert render("{{ .Tools | json }}", data) == (
        '[{"name":"f","args":{"x":"\\u003ca\\u0026b\\u003e"}}]'
    )
    assert (
        render("{{ json .Name }}|{{ toJson .N }}|{{ json 1.5 }}", data) == '"Al \\"x\\""|null|1.5'
    )
    assert render('{{ "abc" | len }}', data) == "3"
    assert render('{{ .Name | printf "%s!" }}', data) == 'Al "x"!'
    assert render('{{ "a" | printf "%s-%s" "b" }}', data) == "b-a"  # piped value goes last


def test_parenthesised_expressions() -> None:
    data = {"L": [1, 2, 3], "M": {"k": {"v": "deep"}}}
    assert render("{{ (len .L) }} {{ eq (len (slice .L 1)) 2 }} {{ (index .M `k`).v }}", data) == (
        "3 true deep"
    )


def test_comparisons() -> None:
    tpl = (
        '{{ eq 1 2 3 1 }} {{ eq "a" "b" }} {{ ne 1 2 }} {{ ne 1 "1" }} '
        '{{ lt 1 2.5 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1 2 }}'
    )
    assert render(tpl, {}) == "true false true true true true true false"


def test_and_or_not_return_go_values_and_short_circuit() -> None:
    data = {"L": [1], "E": ""}
    assert render("{{ and 1 0 2 }}|{{ and 1 2 }}|{{ or .E 0 }}|{{ or .E 5 }}", data) == "0|2|0|5"
    assert render("{{ not .E }} {{ not .L }}", data) == "true false"
    # The second operand would fail if evaluated.
    assert render("{{ or .L (index .L 9) }}|{{ and .E (index .L 9) }}|", data) == "[1]||"


def test_len_index_slice() -> None:
    data = {"L": ["a", "b", "c"], "M": {"k": "v"}, "S": "hello", "N": [[1, 2], [3]]}
    tpl = (
        "{{ len .L }} {{ len .M }} {{ len .S }} {{ len .Missing }} "
        '{{ index .L 1 }} {{ index .M "k" }}[{{ index .M "zz" }}] {{ index .N 1 0 }} '
        "{{ slice .L 1 }} {{ slice .L 0 2 }} {{ slice .S 1 3 }} {{ slice .L }}"
    )
    assert render(tpl, data) == "3 1 5 0 b v[] 3 [b c] [a b] el [a b c]"


def test_print_and_printf() -> None:
    assert render('{{ print 1 2 "a" 3 "b" "c" }}', {}) == "1 2a3bc"
    tpl = (
        '{{ printf "%s=%d %v %q %5.2f|%-4s|%05d|%x|%t" '
        '"a" 3 true "x\\"y" 3.14159 "ab" 42 255 false }}'
    )
    assert render(tpl, {}) == 'a=3 true "x\\"y"  3.14|ab  |00042|ff|false'
    assert render('{{ printf "%d%%" 50 }}', {}) == "50%"
    assert render('{{ printf "%d %d" 1 }}', {}) == "1 %!d(MISSING)"
    assert render('{{ printf "%d" "x" }}', {}) == "%!d(string=x)"
    assert render('{{ printf "a" 1 }}', {}) == "a%!(EXTRA int=1)"
    assert render('{{ printf "%v %v" .L .M }}', {"L": [1, "a"], "M": {"b": 2, "a": 1}}) == (
        "[1 a] map[a:1 b:2]"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.5, "1.5"),
        (2.0, "2"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5e-7, "-2.5e-07"),
        (0.7, "0.7"),
        (True, "true"),
        (False, "false"),
        (None, ""),
        (42, "42"),
        ("s", "s"),
    ],
)
def test_values_print_as_go_does(value: Any, expected: str) -> None:
    assert render("{{ .V }}", {"V": value}) == expected


def test_literals() -> None:
    tpl = (
        '{{ "tab\\there \\u00e9 \\x41 \\101" }}|{{ `raw\\n{{` }}|{{ 0x1F }} {{ 010 }} {{ -3 }} '
        "{{ 1_000 }} {{ 1.5e3 }} {{ true }} {{ false }}|{{ nil }}|"
    )
    assert render(tpl, {}) == "tab\there é A A|raw\\n{{|31 8 -3 1000 1500 true false||"


def test_delimiters_inside_strings_do_not_close_the_action() -> None:
    assert render('{{ print "}}" }}', {}) == "}}"


def test_multiline_action() -> None:
    assert render("{{ if\n  .A\n}}yes{{ end }}", {"A": 1}) == "yes"


def test_template_error_is_a_bad_request() -> None:
    with pytest.raises(TemplateError) as info:
        parse("{{ nope }}")
    assert isinstance(info.value, BadRequestError)
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ if .X }}open", r"line 1, column 4: \{\{if\}\} has no matching \{\{end\}\}"),
        ("{{ range .X }}", r"\{\{range\}\} has no matching \{\{end\}\}"),
        ("text\n{{ .X", r"line 2, column 1: unclosed action"),
        ("{{ end }}", r"unexpected \{\{end\}\}"),
        ("{{ else }}", r"unexpected \{\{else\}\}"),
        ("{{ if 1 }}{{ else }}{{ else }}{{ end }}", r"column 24: unexpected \{\{else\}\}"),
        ("{{ frobnicate .X }}", r'function "frobnicate" not defined'),
        ('{{ define "x" }}{{ end }}', r"\{\{define\}\} is not supported"),
        ('{{ template "x" }}', r"\{\{template\}\} is not supported"),
        ('{{ block "x" . }}{{ end }}', r"\{\{block\}\} is not supported"),
        ("{{ break }}", r"\{\{break\}\} outside \{\{range\}\}"),
        ("{{ $y }}", r"undefined variable \$y"),
        ("{{ $y = 1 }}", r"undefined variable \$y"),
        ("{{ $a, $b := .L }}", r"too many declarations"),
        ("{{ }}", r"missing value for command"),
        ("{{ if }}{{ end }}", r"missing value for if"),
        ("{{ (1 }}", r'unexpected "\}\}" in parenthesized pipeline'),
        ("{{ 1) }}", r"unexpected '\)' in command"),
        ("{{ 3x }}", r"bad number syntax"),
        ('{{ "abc }}', r"unterminated quoted string"),
        ('{{ "\\q" }}', r"unknown escape sequence"),
        ("{{ 'a' }}", r"unexpected \"'\" in action"),
        ("{{/* never closed }}", r"unclosed comment"),
        ("{{/* c */ 1 }}", r"comment must end the action"),
    ],
)
def test_parse_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message) as info:
        parse(template)
    assert str(info.value).startswith("template: line ")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ index .L 5 }}", r"index out of range: 5"),
        ("{{ index .S 0 }}", r"can't index item of type int"),
        ("{{ slice .L 2 1 }}", r"index out of range: 2:1"),
        ("{{ len .S }}", r"len of type int"),
        ('{{ lt 1 "a" }}', r"incompatible types for comparison: int and string"),
        ("{{ range .S }}{{ end }}", r"range can't iterate over int"),
        ("{{ .L 1 }}", r"can't give argument to non-function"),
        ("{{ len }}", r"wrong number of args for len: got 0"),
        ("{{ not 1 2 }}", r"wrong number of args for not: got 2"),
        ("{{ range $v := .L }}{{ else }}{{ $v }}{{ end }}", r"undefined variable \$v"),
        ('{{ printf "%99999d" 1 }}', r"width or precision too large"),
        ("{{ json .F }}", r"error calling json"),
    ],
)
def test_render_errors(template: str, message: str) -> None:
    data = {"L": [], "S": 5, "F": float("nan")}
    tpl = parse(template)
    with pytest.raises(TemplateError, match=message):
        tpl.render(data)


def test_range_else_uses_outer_dot() -> None:
    assert render("{{ range .L }}x{{ else }}{{ .Name }}{{ end }}", {"L": [], "Name": "n"}) == "n"


# --- budgets: steps that grow with the messages, output bounded by what can fit -------------


def test_output_past_max_chars_stops_the_rendering() -> None:
    template = gotemplate.parse('{{range .Items}}{{printf "%9999s" .}}{{end}}')
    assert len(template.render({"Items": ["a"] * 3}, max_chars=30_000)) == 29_997
    started = time.monotonic()
    with pytest.raises(gotemplate.OutputTooLongError, match="over 30000 characters"):
        template.render({"Items": ["a"] * 2000}, max_chars=30_000)
    assert time.monotonic() - started < 0.5


def test_max_steps_below_the_fixed_limit_applies() -> None:
    nested = "{{range $.Items}}" * 30 + "x" + "{{end}}" * 30
    with pytest.raises(gotemplate.TemplateError, match="over 2000 steps"):
        gotemplate.render(nested, {"Items": [1, 2]}, max_steps=2000)
    with pytest.raises(gotemplate.TemplateError, match=f"over {gotemplate.MAX_STEPS} steps"):
        gotemplate.render(nested, {"Items": [1, 2]}, max_steps=10**12)


def _generation(template: str, messages: int, prompt: str = "Oi") -> Generation:
    turns = [{"role": "user", "content": f"{prompt} {i}"} for i in range(messages)]
    return Generation(model_path=Path("m.gguf"), model_name="m", template=template, messages=turns)


def test_a_template_of_ranges_in_ranges_stops_in_milliseconds() -> None:
    builder = PromptBuilder(None, "", "")
    nested = "{{range $.Messages}}" * 60 + "x" + "{{end}}" * 60
    started = time.monotonic()
    with pytest.raises(gotemplate.TemplateError, match="steps"):
        builder.build(_generation(nested, 2))
    assert time.monotonic() - started < 0.1  # it was 0.6 s of the engine's time
    # One pass over many messages is within its budget.
    ollama_like = (
        '{{range .Messages}}{{if eq .Role "user"}}<|user|>{{.Content}}'
        "{{else}}<|assistant|>{{.Content}}{{end}}\n{{end}}<|assistant|>"
    )
    text, _ = builder.build(_generation(ollama_like, 5000))
    assert text.count("<|user|>") == 5000


def test_a_prompt_template_too_long_for_the_context_stops_at_max_chars() -> None:
    builder = PromptBuilder(None, "", "")
    request = _generation("{{.Prompt}}" * 200, 1, prompt="p" * 100_000)
    started = time.monotonic()
    with pytest.raises(gotemplate.OutputTooLongError):
        builder.build(request, max_chars=200_000)
    assert time.monotonic() - started < 0.2
    # Prompt/Response templates: the budget is for all the turns together.
    turns = _generation("{{.Prompt}}|{{.Response}}", 0)
    turns.messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "t" * 1000} for i in range(400)
    ]
    assert len(builder.build(turns, max_chars=500_000)[0]) > 300_000
    with pytest.raises(gotemplate.OutputTooLongError):
        builder.build(turns, max_chars=100_000)
