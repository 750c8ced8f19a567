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

    def build(self, request: Generation) -> tuple[str, list[str]]:
        """The prompt text and extra stop sequences the template implies."""
        if request.raw:
            return request.prompt, []
        if request.template:
            return self._go(request), []
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

    def _go(self, request: Generation) -> str:
        template = request.template or ""
        messages = self.messages(request)
        data_messages = [{"Role": m["role"], "Content": m.get("content") or ""} for m in messages]
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        if ".Messages" in template:
            return gotemplate.render(
                template, {"System": system, "Messages": data_messages, "Response": ""}
            )
        # Prompt/Response templates: one rendering per user turn, the last cut at .Response.
        head = _RESPONSE.split(template, maxsplit=1)[0]
        parts: list[str] = []
        turns = [m for m in messages if m["role"] != "system"]
        pending: str | None = None
        first = True
        for message in turns:
            if message["role"] == "user":
                if pending is not None:
                    parts.append(self._render_turn(template, system if first else "", pending, ""))
                    first = False
                pending = message.get("content") or ""
            elif pending is not None:
                parts.append(
                    self._render_turn(
                        template, system if first else "", pending, message.get("content") or ""
                    )
                )
                first = False
                pending = None
        parts.append(
            gotemplate.render(
                head, {"System": system if first else "", "Prompt": pending or "", "Response": ""}
            )
        )
        return "".join(parts)

    @staticmethod
    def _render_turn(template: str, system: str, prompt: str, response: str) -> str:
        return gotemplate.render(
            template, {"System": system, "Prompt": prompt, "Response": response}
        )
