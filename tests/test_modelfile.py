"""Unit tests for billumy.modelfile: parsing, parameter typing and rendering of Modelfiles."""

from __future__ import annotations

from typing import Any

import pytest

from billumy.errors import BadRequestError
from billumy.modelfile import (
    Modelfile,
    ModelfileError,
    coerce_parameters,
    parse_modelfile,
    render_modelfile,
)

ORIGINAL = """FROM mistral
PARAMETER system "Você é Billumy, um assistente..."
PARAMETER temperature 0.7
PARAMETER num_ctx 1024
"""

CHATML = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)


def test_original_billumy_modelfile_loads_as_written() -> None:
    mf = parse_modelfile(ORIGINAL)
    assert mf == Modelfile(
        from_="mistral",
        system="Você é Billumy, um assistente...",
        parameters={"temperature": 0.7, "num_ctx": 1024},
    )
    assert isinstance(mf.parameters["num_ctx"], int)
    assert isinstance(mf.parameters["temperature"], float)


def test_full_modelfile() -> None:
    text = f'''# A persona
from llama3:8b

Template """{CHATML}"""
SYSTEM You are "Bill".
parameter stop "<|im_end|>"
PARAMETER stop <|eot_id|>
PARAMETER penalize_newline true
PARAMETER seed -1
PARAMETER top_p 1
   # indented comment
MESSAGE user "say \\"hi\\" and \\\\ and \\n"
message Assistant """  hi
there"""
'''
    mf = parse_modelfile(text)
    assert mf.from_ == "llama3:8b"
    assert mf.template == CHATML
    assert mf.system == 'You are "Bill".'
    assert mf.parameters == {
        "stop": ["<|im_end|>", "<|eot_id|>"],
        "penalize_newline": True,
        "seed": -1,
        "top_p": 1.0,
    }
    assert mf.messages == [
        {"role": "user", "content": 'say "hi" and \\ and \\n'},
        {"role": "assistant", "content": "  hi\nthere"},
    ]


def test_triple_quoted_values_keep_newlines_and_quotes() -> None:
    mf = parse_modelfile('FROM m\nSYSTEM """\nLine "one"\n\n  Line two\n"""\n')
    assert mf.system == '\nLine "one"\n\n  Line two\n'


def test_double_quoted_value_may_span_lines_and_be_empty() -> None:
    mf = parse_modelfile('FROM m\nSYSTEM "a\nb"\nTEMPLATE ""\n')
    assert mf.system == "a\nb"
    assert mf.template == ""


def test_later_values_win_and_parameter_system_is_not_a_parameter() -> None:
    mf = parse_modelfile(
        "FROM m\nSYSTEM one\nPARAMETER system two\nPARAMETER top_k 5\nPARAMETER top_k 7"
    )
    assert mf.system == "two"
    assert mf.parameters == {"top_k": 7}


def test_crlf_bom_and_missing_final_newline() -> None:
    mf = parse_modelfile("\ufeffFROM m\r\nSYSTEM hi  \r\nPARAMETER num_ctx 2048")
    assert mf == Modelfile(from_="m", system="hi", parameters={"num_ctx": 2048})


INT_PARAMS = [
    "num_ctx",
    "num_predict",
    "num_keep",
    "seed",
    "top_k",
    "repeat_last_n",
    "num_batch",
    "num_thread",
    "num_gpu",
    "mirostat",
]
FLOAT_PARAMS = [
    "temperature",
    "top_p",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
    "mirostat_tau",
    "mirostat_eta",
    "tfs_z",
]


def test_every_known_parameter_type() -> None:
    text = "\n".join(
        [
            "FROM m",
            *(f"PARAMETER {name} 2" for name in INT_PARAMS),
            *(f"PARAMETER {name} 0.5" for name in FLOAT_PARAMS),
            "PARAMETER penalize_newline false",
        ]
    )
    params = parse_modelfile(text).parameters
    assert {k: v for k, v in params.items() if k in INT_PARAMS} == dict.fromkeys(INT_PARAMS, 2)
    assert {k: v for k, v in params.items() if k in FLOAT_PARAMS} == dict.fromkeys(
        FLOAT_PARAMS, 0.5
    )
    assert params["penalize_newline"] is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM m\nADAPTER ./lora.gguf", 'unsupported Modelfile instruction "ADAPTER" on line 2'),
        ('FROM m\n\nLICENSE """MIT"""', 'unsupported Modelfile instruction "LICENSE" on line 3'),
        ("FROM m\nREQUIRES 0.5", 'unsupported Modelfile instruction "REQUIRES" on line 2'),
        ("FROM m\nhello world", 'unsupported Modelfile instruction "hello" on line 2'),
        ("SYSTEM hi\n", "Modelfile has no FROM instruction"),
        ("# only a comment\n\n", "Modelfile has no FROM instruction"),
        ("FROM a\nFROM b", "duplicate FROM instruction on line 2"),
        ("FROM\n", "missing value for FROM on line 1"),
        ("FROM m\nSYSTEM", "missing value for SYSTEM on line 2"),
        ("FROM m\nPARAMETER", "missing parameter name on line 2"),
        ("FROM m\nPARAMETER top_k", "missing value for PARAMETER on line 2"),
        ("FROM m\nMESSAGE", "missing message role on line 2"),
        (
            "FROM m\nPARAMETER num_ctx abc",
            'invalid value "abc" for parameter "num_ctx": expected an integer on line 2',
        ),
        (
            "FROM m\nPARAMETER num_ctx 1.5",
            'invalid value "1.5" for parameter "num_ctx": expected an integer',
        ),
        (
            "FROM m\nPARAMETER temperature warm",
            'invalid value "warm" for parameter "temperature": expected a number',
        ),
        ("FROM m\nPARAMETER temperature nan", 'parameter "temperature": expected a number'),
        (
            "FROM m\nPARAMETER penalize_newline maybe",
            'invalid value "maybe" for parameter "penalize_newline": expected true or false',
        ),
        ("FROM m\nPARAMETER num_gqa 8", 'unknown parameter "num_gqa" on line 2'),
        ("FROM m\nMESSAGE robot hi", 'invalid message role "robot" on line 2'),
        ('FROM m\nSYSTEM """never closed', 'unterminated """ for SYSTEM on line 2'),
        ('FROM m\n\nSYSTEM "never closed\n', 'unterminated " for SYSTEM on line 3'),
        ('FROM m\nSYSTEM "a" b', "unexpected text after quoted value on line 2"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(text)
    assert message in str(info.value)
    assert isinstance(info.value, BadRequestError)
    assert info.value.status_code == 400


def test_coerce_parameters_accepts_json_values() -> None:
    raw = {
        "num_ctx": 4096,
        "num_predict": 128.0,
        "temperature": 1,
        "top_p": "0.9",
        "stop": "</s>",
        "penalize_newline": True,
        "seed": None,
    }
    assert coerce_parameters(raw) == {
        "num_ctx": 4096,
        "num_predict": 128,
        "temperature": 1.0,
        "top_p": 0.9,
        "stop": ["</s>"],
        "penalize_newline": True,
    }
    assert coerce_parameters({"stop": ["a", "b"]}) == {"stop": ["a", "b"]}
    assert coerce_parameters({}) == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"num_ctx": 1.5}, 'invalid value "1.5" for parameter "num_ctx": expected an integer'),
        ({"num_ctx": True}, 'invalid value "true" for parameter "num_ctx": expected an integer'),
        ({"temperature": False}, 'parameter "temperature": expected a number'),
        ({"temperature": [1]}, 'parameter "temperature": expected a number'),
        ({"temperature": float("inf")}, 'parameter "temperature": expected a finite number'),
        ({"penalize_newline": 1}, 'parameter "penalize_newline": expected true or false'),
        ({"stop": ["a", 1]}, 'invalid value "["a", 1]" for parameter "stop"'),
        ({"stop": 5}, 'parameter "stop": expected a string or a list of strings'),
        ({"system": "hi"}, 'unknown parameter "system"'),
        ({"bogus": 1}, 'unknown parameter "bogus"'),
    ],
)
def test_coerce_parameters_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelfileError) as info:
        coerce_parameters(raw)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"mirostat": 3}, "expected 0 (off), 1 (Mirostat) or 2 (Mirostat 2.0)"),
        ({"mirostat": -1}, "expected 0 (off), 1 (Mirostat) or 2 (Mirostat 2.0)"),
        ({"mirostat": "7"}, "expected 0 (off), 1 (Mirostat) or 2 (Mirostat 2.0)"),
        ({"mirostat_tau": -0.5}, "expected a number from 0 to 100"),
        ({"mirostat_tau": 1e300}, "expected a number from 0 to 100"),
        ({"mirostat_eta": 1.5}, "expected a number from 0 to 1"),
        ({"mirostat_eta": -1e-9}, "expected a number from 0 to 1"),
        ({"top_p": 1.01}, "expected a number from 0 to 1"),
        ({"min_p": -0.1}, "expected a number from 0 to 1"),
        ({"typical_p": 2}, "expected a number from 0 to 1"),
        ({"tfs_z": 5}, "expected a number from 0 to 1"),
        ({"repeat_penalty": 0}, "expected a number above 0, at most 100"),
        ({"repeat_penalty": 1e308}, "expected a number above 0, at most 100"),
        ({"presence_penalty": -1e308}, "expected a number from -2 to 2"),
        ({"frequency_penalty": 2.5}, "expected a number from -2 to 2"),
        ({"temperature": -0.1}, "expected a number from 0 up"),
        ({"temperature": 10**400}, "expected a finite number"),
        ({"repeat_last_n": -2}, "expected -1 (the whole context) or an integer from 0 to"),
        ({"top_k": 10**400}, "expected an integer from -2147483648 to 2147483647"),
        ({"num_ctx": -(10**400)}, "expected an integer from -2147483648 to 2147483647"),
    ],
)
def test_sampling_options_out_of_range_name_the_option_and_its_range(
    raw: dict[str, Any], expected: str
) -> None:
    (name,) = raw
    with pytest.raises(ModelfileError) as info:
        coerce_parameters(raw)
    assert f'for parameter "{name}": {expected}' in str(info.value)
    assert info.value.status_code == 400
    # The same from a Modelfile.
    value = raw[name] if not isinstance(raw[name], int) or abs(raw[name]) < 10**30 else None
    if value is not None:
        with pytest.raises(ModelfileError, match=f'parameter "{name}"'):
            parse_modelfile(f"FROM m\nPARAMETER {name} {value}")


@pytest.mark.parametrize(
    "raw",
    [
        {"mirostat": 0},
        {"mirostat": 1},
        {"mirostat": 2.0},
        {"mirostat_tau": 0},
        {"mirostat_tau": 100},
        {"mirostat_eta": 1},
        {"top_p": 0},
        {"top_p": 1},
        {"repeat_penalty": 0.01},
        {"presence_penalty": -2},
        {"frequency_penalty": 2},
        {"repeat_last_n": -1},
        {"temperature": 0},
    ],
)
def test_sampling_options_at_the_ends_of_their_ranges_are_taken(raw: dict[str, Any]) -> None:
    assert coerce_parameters(raw) == raw  # 2.0 == 2: the values as sent, typed


def test_render_original() -> None:
    assert render_modelfile(parse_modelfile(ORIGINAL)) == (
        "FROM mistral\n"
        "SYSTEM Você é Billumy, um assistente...\n"
        "PARAMETER temperature 0.7\n"
        "PARAMETER num_ctx 1024\n"
    )


def test_render_quotes_only_when_needed() -> None:
    mf = Modelfile(
        from_="./models/my model.gguf",
        system="  padded",
        template='"q"',
        parameters={"stop": ["<|im_end|>", " "], "penalize_newline": False, "mirostat_eta": 1e-05},
        messages=[{"role": "user", "content": 'a """ b\nc \\ d'}],
    )
    assert render_modelfile(mf) == (
        "FROM ./models/my model.gguf\n"
        'TEMPLATE "\\"q\\""\n'
        'SYSTEM """  padded"""\n'
        "PARAMETER stop <|im_end|>\n"
        'PARAMETER stop """ """\n'
        "PARAMETER penalize_newline false\n"
        "PARAMETER mirostat_eta 1e-05\n"
        'MESSAGE user "a \\"\\"\\" b\nc \\\\ d"\n'
    )


@pytest.mark.parametrize(
    "mf",
    [
        Modelfile(from_="mistral"),
        Modelfile(
            from_="llama3",
            system='Multi\nline "system"\n',
            template=CHATML,
            parameters={"stop": ["<|im_end|>", "<|eot_id|>"], "temperature": 0.2, "seed": 42},
            messages=[
                {"role": "system", "content": "s"},
                {"role": "user", "content": ""},
                {"role": "assistant", "content": '"quoted"'},
                {"role": "tool", "content": 'ends with backslash \\ and quote "'},
            ],
        ),
        Modelfile(from_="m", system="", template='"""'),
        Modelfile(from_="m", system="# not a comment", template="\ttabbed"),
    ],
)
def test_round_trip(mf: Modelfile) -> None:
    assert parse_modelfile(render_modelfile(mf)) == mf


def test_render_validates_parameters() -> None:
    with pytest.raises(ModelfileError, match='unknown parameter "nope"'):
        render_modelfile(Modelfile(from_="m", parameters={"nope": 1}))
