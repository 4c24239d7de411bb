"""OpenAI's request and response shapes, as pydantic models.

Requests are validated here (types, ranges, required fields) so bad input becomes a 400 with
the offending ``param`` before any model is touched. Response models exist for the OpenAPI
schema and for tests; the hot path builds plain dicts with the same shape (``responses.py``).
Unknown request fields are accepted and forwarded to remote models, as OpenAI-compatible
servers commonly do, so newer SDK parameters do not break old strata servers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _has_content(self) -> ChatMessage:
        if self.content is None and not self.tool_calls and self.role != "assistant":
            raise ValueError(f"a '{self.role}' message needs content")
        return self

    def text(self) -> str:
        """Content flattened to text; non-text parts are refused by the local backends."""
        if isinstance(self.content, str) or self.content is None:
            return self.content or ""
        return "".join(part.text or "" for part in self.content if part.type == "text")


class JSONSchemaSpec(BaseModel):
    name: str = Field(..., min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormatSpec(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormatSpec:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type json_schema needs json_schema")
        return self


class StreamOptions(BaseModel):
    include_usage: bool = False


Stop = str | list[str] | None


def _check_stop(value: Stop) -> Stop:
    if isinstance(value, list) and len(value) > 4:
        raise ValueError("stop takes at most 4 sequences")
    if value == "" or (isinstance(value, list) and any(s == "" for s in value)):
        raise ValueError("stop sequences must not be empty")
    return value


class _Sampling(_Request):
    model: str = Field(..., min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int = Field(1, ge=1, le=16)
    stop: Stop = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    user: str | None = None

    _stop = field_validator("stop")(_check_stop)


class AgentOptions(BaseModel):
    """``strata.agent``: run the model with these tools and execute the calls it makes."""

    model_config = ConfigDict(extra="forbid")
    tools: list[str | dict[str, Any]] = Field(
        ..., min_length=1, description="Server tool names (GET /v1/tools) or tool objects"
    )
    max_steps: int | None = Field(None, ge=1, le=50, description="Most model calls (default 5)")


class StrataOptions(BaseModel):
    """The request's ``strata`` object: which of strata's layers to use for this request.
    Unknown keys are refused (400 naming the key), so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid")
    session: str | None = Field(None, description="Dialogue session id to continue")
    knowledge: str | None = Field(None, description="Knowledge collection to ground the answer")
    top_k: int | None = Field(None, ge=1, le=50, description="Passages to retrieve")
    voice: str | None = Field(None, description="Brand voice id to apply")
    template: str | None = Field(None, description="Template to run (its inputs in `inputs`)")
    inputs: dict[str, Any] | None = Field(None, description="The template's input values")
    quality: float | None = Field(
        None, gt=0, le=1, description="Routes: keep at least this share of the big model's quality"
    )
    max_cost: float | None = Field(None, ge=0, description="Routes: most USD to spend on this one")
    agent: AgentOptions | None = Field(None, description="Run an agent loop with server tools")
    code: dict[str, Any] | None = Field(
        None, description="The code route: tests, max_attempts, model, entry_point"
    )


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormatSpec | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    strata: StrataOptions | None = None

    @model_validator(mode="after")
    def _top_needs_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs requires logprobs to be true")
        return self


class CompletionRequest(_Sampling):
    prompt: str | list[str] = Field(...)
    max_tokens: int | None = Field(16, ge=1)
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("prompt must not be an empty list")
        return value


class EmbeddingRequest(_Request):
    model: str = Field(..., min_length=1)
    input: str | list[str] = Field(...)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)

    @field_validator("input")
    @classmethod
    def _input_not_empty(cls, value: str | list[str]) -> str | list[str]:
        if (isinstance(value, list) and not value) or value == "":
            raise ValueError("input must not be empty")
        return value


# ---- responses (for the OpenAPI schema and tests) ----


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TopLogprobOut(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobOut(TopLogprobOut):
    top_logprobs: list[TopLogprobOut]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprobOut] | None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None
    finish_reason: str | None


class StrataInfo(BaseModel):
    """strata's extension field; OpenAI clients ignore it."""

    model: str = Field(..., description="The configured model name that answered")
    timings: dict[str, float | None]
    model_config = ConfigDict(extra="allow")  # each layer adds its own (route, citations, ...)


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageOut
    system_fingerprint: str | None = None
    strata: StrataInfo | None = None


class ChatDelta(BaseModel):
    role: str | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: UsageOut | None = None
    strata: StrataInfo | None = None


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None
    finish_reason: str | None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageOut | None = None
    strata: StrataInfo | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    capabilities: list[str] = Field(default_factory=list)
    loaded: bool = False
    description: str | None = None
    stats: dict[str, float | int | None] | None = Field(
        None, description="strata: queue depth, running generations, measured tokens/s"
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: dict[str, int]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail
