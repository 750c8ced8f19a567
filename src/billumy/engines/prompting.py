"""The prompt text for a model: raw, an Ollama (Go) template, or the GGUF's own template."""

from __future__ import annotations

import re
from typing import Any

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from billumy import gotemplate
from billumy.engines.base import Generation

# Used when a GGUF carries no chat template (base models): plain turns the model can continue.
_FALLBACK = (
    "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n"
    "{% elif m.role == 'user' %}User: {{ m.content }}\n"
    "{% else %}Assistant: {{ m.content }}\n{% endif %}{% endfor %}Assistant:"
)
_RESPONSE = re.compile(r"\{\{-?\s*\.Response\s*-?\}\}")


class PromptBuilder:
    """Renders a :class:`Generation` into prompt text for one loaded model."""

    def __init__(self, chat_template: str | None, bos: str, eos: str) -> None:
        self.bos = bos
        self.has_template = bool(chat_template)
        self._jinja = Jinja2ChatFormatter(
            template=chat_template or _FALLBACK, eos_token=eos, bos_token=bos
        )

    def build(self, request: Generation, *, max_chars: int | None = None) -> tuple[str, list[str]]:
        """The prompt text and extra stop sequences the template implies. A Go template's
        rendering stops with :class:`~billumy.gotemplate.OutputTooLongError` once its text
        passes ``max_chars`` (a prompt that cannot fit the context: no need to finish it),
        and with a :class:`~billumy.gotemplate.TemplateError` after a number of steps that
        grows with the messages it is given (loops within loops do not)."""
        if request.raw:
            return request.prompt, []
        if request.template:
            return self._go(request, max_chars), []
        return self._chat(self.messages(request))

    @staticmethod
    def messages(request: Generation) -> list[dict[str, Any]]:
        if request.messages is not None:
            messages = list(request.messages)
            if request.system and not any(m.get("role") == "system" for m in messages):
                messages.insert(0, {"role": "system", "content": request.system})
            return messages
        messages = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": request.prompt})
        return messages

    def _chat(self, messages: list[dict[str, Any]]) -> tuple[str, list[str]]:
        result = self._jinja(
            messages=[{"role": m["role"], "content": m.get("content") or ""} for m in messages]
        )
        prompt = result.prompt
        # The tokenizer adds BOS itself; a template that also writes it would double it.
        if self.bos and prompt.startswith(self.bos):
            prompt = prompt[len(self.bos) :]
        stop = (
            result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
        )
        return prompt, [s for s in stop if s]

    def _go(self, request: Generation, max_chars: int | None) -> str:
        template = request.template or ""
        messages = self.messages(request)
        data_messages = [{"Role": m["role"], "Content": m.get("content") or ""} for m in messages]
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        if ".Messages" in template:
            data = {"System": system, "Messages": data_messages, "Response": ""}
            return gotemplate.render(
                template, data, max_steps=_steps(len(messages)), max_chars=max_chars
            )
        # Prompt/Response templates: one rendering per user turn, the last cut at .Response.
        head = _RESPONSE.split(template, maxsplit=1)[0]
        parts: list[str] = []
        size = 0

        def turn(text: str, data: dict[str, str]) -> None:
            nonlocal size
            left = None if max_chars is None else max_chars - size
            parts.append(gotemplate.render(text, data, max_steps=_steps(1), max_chars=left))
            size += len(parts[-1])

        turns = [m for m in messages if m["role"] != "system"]
        pending: str | None = None
        first = True
        for message in turns:
            if message["role"] == "user":
                if pending is not None:
                    sys = system if first else ""
                    turn(template, {"System": sys, "Prompt": pending, "Response": ""})
                    first = False
                pending = message.get("content") or ""
            elif pending is not None:
                response = message.get("content") or ""
                sys = system if first else ""
                turn(template, {"System": sys, "Prompt": pending, "Response": response})
                first = False
                pending = None
        turn(head, {"System": system if first else "", "Prompt": pending or "", "Response": ""})
        return "".join(parts)


def _steps(messages: int) -> int:
    """The steps a Go template may take to render ``messages`` messages: generous for any
    template that goes over them once or a few times (about 20 steps a message for Ollama's
    own), far too few for ranges within ranges (2**60 steps for 60 of them over 2 messages,
    which held the engine for 0.6 s per request at the fixed limit of 500,000)."""
    return 10_000 + 1_000 * messages
