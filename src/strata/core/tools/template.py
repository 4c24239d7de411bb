"""Render OpenAI messages and tools into a prompt with the GGUF's own chat template.

Why the model's own template: Qwen2.5 was trained on exactly the text its template writes —
the ``# Tools`` system block with one JSON signature per line, ``<tool_call>`` blocks in
assistant turns, results as ``<tool_response>`` inside a user turn. Any other wording costs
accuracy. The template ships in the GGUF (``tokenizer.chat_template``), and
llama-cpp-python's ``Jinja2ChatFormatter`` renders it (and passes ``tools`` through).

What OpenAI messages need first (:func:`template_messages`): the template writes
``tool_call.arguments | tojson``, so the JSON *string* OpenAI sends must become an object
again or it is quoted twice; ``content`` may be None (an assistant turn with only calls) or
a list of text parts, while the template concatenates strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from strata.core.errors import InvalidRequest
from strata.core.tools.grammar import ToolSpec
from strata.core.tools.parsing import arguments_object


def _text(content: Any, model: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise InvalidRequest(f"model '{model}' accepts only text content", param="messages")
            parts.append(str(part.get("text") or ""))
        return "".join(parts)
    raise InvalidRequest("message content must be a string or a list of parts", param="messages")


def template_messages(
    messages: Sequence[Mapping[str, Any]], model: str = "this model"
) -> list[dict[str, Any]]:
    """OpenAI chat messages in the shape chat templates read (``model`` names the model in
    the 400 for content that is not text)."""
    out = []
    for message in messages:
        item: dict[str, Any] = {**message, "content": _text(message.get("content"), model)}
        calls = message.get("tool_calls")
        if calls:
            item["tool_calls"] = [
                {
                    **call,
                    "function": {
                        **call.get("function", {}),
                        "arguments": arguments_object(call.get("function", {}).get("arguments")),
                    },
                }
                for call in calls
            ]
        elif "tool_calls" in item:
            del item["tool_calls"]  # None or []: the template tests truthiness, keep it plain
        out.append(item)
    return out


class ToolPromptRenderer:
    """A model's chat template, ready to render messages with tools.

    Build it from the template text (the llama backend has it after loading) or from a GGUF
    file (:meth:`from_gguf`, which reads only the vocabulary, in well under a second)."""

    def __init__(self, template: str, *, bos_token: str = "", eos_token: str = "") -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.template = template
        # Any: its typed signature wants llama_cpp's TypedDicts; ours are plain OpenAI dicts.
        self._formatter: Any = Jinja2ChatFormatter(
            template, eos_token=eos_token, bos_token=bos_token
        )

    @classmethod
    def from_gguf(cls, path: str | Path) -> ToolPromptRenderer:
        from llama_cpp import Llama

        llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
        try:
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise InvalidRequest(f"{Path(path).name} has no chat template", param="model")
            eos = llm._model.token_get_text(llm.token_eos())
            bos = llm._model.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else ""
        finally:
            llm.close()
        return cls(str(template), bos_token=str(bos), eos_token=str(eos))

    @property
    def supports_tools(self) -> bool:
        """Whether the template reads ``tools`` at all (else tools need another route)."""
        return "tools" in self.template

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[ToolSpec] = (),
        *,
        prefix: str = "",
    ) -> str:
        """The prompt, ending with the assistant's generation prompt and then ``prefix``
        (auto mode continues a turn: the free text so far plus ``<tool_call>``)."""
        rendered = self._formatter(
            messages=template_messages(messages),
            tools=[tool.openai() for tool in tools] or None,
        )
        return str(rendered.prompt) + prefix
