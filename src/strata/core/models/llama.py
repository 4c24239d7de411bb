"""Local GGUF models, in-process, through llama-cpp-python.

Generation runs on one worker thread per model, so the event loop never blocks; tokens cross
back to the loop through ``call_soon_threadsafe``. The worker checks a cancel flag before
every token, and the async side waits for the worker to let go of the model before it
returns, so a closed stream frees the model within a token.

Logprobs: llama-cpp-python's own path needs ``logits_all=True`` (n_ctx × vocab floats kept for
every position) and was ~5× slower here. We keep ``logits_all=False`` and read only the last
position's logits, which llama.cpp already holds when a token is sampled, then compute one
log-softmax and the top-k with numpy, and only when the request asks for logprobs.
"""

from __future__ import annotations

import asyncio
import codecs
import gc
import json
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from strata.core.errors import CatalogError, ContextWindowExceeded, InvalidRequest, ModelLoadError
from strata.core.models.base import (
    Backend,
    Capability,
    Chunk,
    GenerationRequest,
    SamplingParams,
    TokenLogprob,
    Usage,
)
from strata.core.models.llama_batch import BatchDecoder
from strata.core.models.llama_draft import Speculator, load_draft, plain_greedy
from strata.core.models.llama_prefix import PrefixCache
from strata.core.models.llama_tools import Sampled, TextSink, ToolDecoder, request_tools, tool_plan
from strata.core.models.llama_util import (
    first_stop,
    last_logits,
    route_llama_logs,
    stop_holdback,
    token_logprob,
)
from strata.core.settings import ModelSpec
from strata.core.tools.template import template_messages

Emit = Callable[[Chunk | BaseException | None], None]


class LlamaBackend(Backend):
    kind = "llama"
    capabilities = frozenset(
        {
            Capability.CHAT,
            Capability.COMPLETION,
            Capability.LOGPROBS,
            Capability.JSON_SCHEMA,
            Capability.STREAMING,
            Capability.TOOLS,
        }
    )
    local = True

    def __init__(self, name: str, spec: ModelSpec, home: Path | None = None) -> None:
        super().__init__(name, spec, home)
        self._llm: Any = None
        self._formatter: Any = None
        self._load_lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{name}")
        self.model_path: Path | None = None
        self.prefix_cache = PrefixCache(int(spec.prompt_cache_mb * 2**20))
        self.speculator: Speculator | None = None
        self.batcher: BatchDecoder | None = None
        self._batch_executor = ThreadPoolExecutor(
            max_workers=spec.batch_slots, thread_name_prefix=f"llama-{name}-batch"
        )

    @property
    def context_window(self) -> int | None:
        return self.spec.n_ctx

    @property
    def concurrency(self) -> int:
        return self.spec.batch_slots

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    # ---- loading ----

    def resolve_path(self) -> Path | None:
        """The GGUF file to load, assembling a bundled model first; None for hf_repo."""
        if self.spec.path is not None:
            if not self.spec.path.is_file():
                raise ModelLoadError(f"model '{self.name}': no GGUF file at {self.spec.path}")
            return self.spec.path
        if self.spec.bundled is not None:
            from strata.core import catalog

            try:
                return catalog.assemble(catalog.lookup(self.spec.bundled), self.home)
            except CatalogError as exc:
                raise ModelLoadError(f"model '{self.name}': {exc.message}") from exc
        return None

    def _load_sync(self) -> None:
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise ModelLoadError(
                "local models need llama-cpp-python: pip install 'strata[local]'"
            ) from exc
        route_llama_logs()
        kwargs: dict[str, Any] = {
            "n_ctx": self.spec.n_ctx,
            "n_threads": self.spec.n_threads or os.cpu_count() or 1,
            "n_batch": min(512, self.spec.n_ctx),
            "logits_all": False,
            "verbose": False,
            **self.spec.options,
        }
        path = self.resolve_path()
        try:
            if path is not None:
                llm = Llama(model_path=str(path), **kwargs)
            else:  # Hugging Face hub: needs network and huggingface-hub installed
                llm = Llama.from_pretrained(
                    repo_id=str(self.spec.hf_repo), filename=self.spec.hf_file, **kwargs
                )
        except (ValueError, RuntimeError, OSError, ImportError) as exc:
            raise ModelLoadError(f"model '{self.name}' failed to load: {exc}") from exc
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            eos = llm._model.token_get_text(llm.token_eos())
            bos = llm._model.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else ""
            self._formatter = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)
            if "tools" not in str(template):  # the template cannot show the model its tools
                self.capabilities = self.capabilities - {Capability.TOOLS}
        else:
            self.capabilities = self.capabilities - {Capability.CHAT, Capability.TOOLS}
        if self.spec.batch_slots > 1:
            self.batcher = BatchDecoder(
                llm, self.spec.batch_slots, self.spec.n_ctx, self.prefix_cache
            )
        if self.spec.draft:
            draft = load_draft(self.name, self.spec, self.home, kwargs)
            self.speculator = Speculator(draft, self.spec.draft_tokens)
        self.model_path = path
        self._llm = llm

    async def load(self) -> None:
        async with self._load_lock:
            if self._llm is None:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, self._load_sync)

    async def unload(self) -> None:
        async with self._load_lock:
            if self._llm is not None:
                llm, self._llm = self._llm, None
                self.prefix_cache.clear()
                if self.batcher is not None:
                    batcher, self.batcher = self.batcher, None
                    await asyncio.get_running_loop().run_in_executor(None, batcher.close)
                if self.speculator is not None:
                    draft, self.speculator = self.speculator.draft, None
                    await asyncio.get_running_loop().run_in_executor(self._executor, draft.close)
                await asyncio.get_running_loop().run_in_executor(self._executor, llm.close)
                del llm
                gc.collect()

    # ---- generation ----

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        await self.load()
        if request.kind == "chat" and Capability.CHAT not in self.capabilities:
            raise InvalidRequest(f"model '{self.name}' has no chat template", param="model")
        if request.passthrough.get("tools") and Capability.TOOLS not in self.capabilities:
            raise InvalidRequest(f"model '{self.name}' does not support tools", param="tools")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Chunk | BaseException | None] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: Chunk | BaseException | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        batched = self._batchable(request)
        executor = self._batch_executor if batched else self._executor
        worker = loop.run_in_executor(executor, self._run, request, emit, cancel, batched)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()
            await asyncio.shield(worker)  # the model is free only once the worker lets go

    def count_tokens(self, text: str) -> int:
        """Exact once loaded (the model's own tokenizer); the base estimate before."""
        if self._llm is None:
            return super().count_tokens(text)
        return len(self._llm.tokenize(text.encode(), add_bos=False, special=False))

    def count_messages(self, messages: list[dict[str, Any]]) -> int:
        """Exactly the prompt ``generate`` would build (chat template and all), once loaded."""
        if self._llm is None or self._formatter is None:
            return super().count_messages(messages)
        request = GenerationRequest(kind="chat", params=SamplingParams(), messages=messages)
        return len(self._prompt_tokens(request)[0])

    def _prompt_tokens(self, request: GenerationRequest) -> tuple[list[int], tuple[str, ...]]:
        llm = self._llm
        if request.kind == "completion":
            return llm.tokenize((request.prompt or "").encode(), add_bos=True, special=False), ()
        specs = request_tools(request)  # 400 naming the tool on a schema that is not one
        formatted = self._formatter(
            messages=template_messages(request.messages or [], self.name),
            tools=[t.openai() for t in specs] or None,
        )
        stops = formatted.stop if isinstance(formatted.stop, list) else [formatted.stop]
        tokens = llm.tokenize(
            formatted.prompt.encode(), add_bos=not formatted.added_special, special=True
        )
        return tokens, tuple(s for s in stops if s)

    def _grammar(self, request: GenerationRequest) -> Any:
        fmt = request.params.response_format
        if fmt.type == "text":
            return None
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        try:
            if fmt.type == "json_schema" and fmt.schema:
                return LlamaGrammar.from_json_schema(json.dumps(fmt.schema), verbose=False)
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        except (ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise InvalidRequest(
                f"response_format schema is not supported: {exc}", param="response_format"
            ) from exc

    def _batchable(self, request: GenerationRequest) -> bool:
        """Requests the batch decoder serves: sampling it does per sequence (temperature,
        top_p, seed, a response_format grammar; logprobs from each sequence's row of the
        batch's logits), no tools or penalties; the rest run one at a time on the model's
        own context. With a draft model configured, plain greedy requests go to the
        speculator instead (it wins only on one stream, where it was measured)."""
        params = request.params
        drafted = plain_greedy(params, None) and params.response_format.type == "text"
        return (
            self.batcher is not None
            and not (self.speculator is not None and drafted)
            and not request.passthrough.get("tools")
            and not params.presence_penalty
            and not params.frequency_penalty
        )

    def _run(
        self, request: GenerationRequest, emit: Emit, cancel: threading.Event, batched: bool
    ) -> None:
        try:
            self._generate_sync(request, emit, cancel, batched)
        except BaseException as exc:  # every failure crosses back to the event loop
            emit(exc)
        finally:
            emit(None)
        # Still on the model's one worker, so the next generation waits for the copy, but
        # after the stream's end so no client does.
        if self._llm is not None and not batched:
            self.prefix_cache.save(self._llm)

    def _generate_sync(
        self, request: GenerationRequest, emit: Emit, cancel: threading.Event, batched: bool
    ) -> None:
        params = request.params
        tokens, template_stops = self._prompt_tokens(request)
        n_ctx = self._llm.n_ctx()
        if len(tokens) + (params.max_tokens or 0) > n_ctx or len(tokens) >= n_ctx:
            raise ContextWindowExceeded(
                f"This model's maximum context length is {n_ctx} tokens. However, you requested "
                f"{len(tokens) + (params.max_tokens or 0)} tokens ({len(tokens)} in the "
                f"messages, {params.max_tokens or 0} in the completion). Please reduce the "
                "length of the messages or completion.",
                param="messages" if request.kind == "chat" else "prompt",
            )
        budget = min(params.max_tokens or n_ctx, n_ctx - len(tokens))
        if params.seed is not None:
            self._llm.set_seed(params.seed)
        plan = tool_plan(request)
        if plan is not None:
            decoder = ToolDecoder(self._sample, self._llm, plan, template_stops)
            decoder.run(tokens, params, budget, cancel, emit)
            return
        sampled = self._sample(
            tokens,
            params,
            self._grammar(request),
            tuple(params.stop) + template_stops,
            budget,
            cancel,
            lambda text, lps: emit(Chunk(text=text, logprobs=lps)),
            batched=batched,
        )
        emit(Chunk(finish_reason=sampled.finish, usage=Usage(len(tokens), len(sampled.tokens))))

    def _sample(
        self,
        tokens: list[int],
        params: SamplingParams,
        grammar: Any,
        stops: tuple[str, ...],
        budget: int,
        cancel: threading.Event,
        out: TextSink,
        *,
        batched: bool = False,
    ) -> Sampled:
        """Sample after ``tokens`` until end of turn, a stop sequence, ``budget`` tokens or
        ``cancel``; text goes to ``out`` as soon as it cannot be the start of a stop."""
        import llama_cpp

        llm = self._llm
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text, sent, finish = "", 0, "length"
        generated: list[int] = []
        ctx = llm._ctx.ctx
        n_vocab = llm.n_vocab()
        want_logprobs = params.logprobs
        pending_lp: list[TokenLogprob] = []
        hit: int | None = None
        stopped_on: str | None = None
        rows: deque[Any] | None = deque() if batched and want_logprobs else None
        if batched:
            assert self.batcher is not None
            stream: Iterator[int] = self.batcher.generate(
                tokens, params, budget, cancel, rows, grammar
            )
        elif self.speculator is not None and plain_greedy(params, grammar):
            self.prefix_cache.restore(llm, tokens)
            stream = self.speculator.generate(llm, tokens)
        else:
            self.prefix_cache.restore(llm, tokens)
            stream = llm.generate(
                tokens,
                temp=params.temperature,
                top_p=params.top_p,
                top_k=0 if params.temperature > 0 else 40,
                min_p=0.0,
                repeat_penalty=1.0,
                presence_penalty=params.presence_penalty,
                frequency_penalty=params.frequency_penalty,
                grammar=grammar,
            )
        for token in stream:
            if cancel.is_set():
                finish = "cancelled"
                break
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                finish = "stop"
                break
            piece = llm.detokenize([token])
            if want_logprobs:
                logits = (
                    rows.popleft() if rows is not None else last_logits(llama_cpp, ctx, n_vocab)
                )
                pending_lp.append(token_logprob(llm, token, piece, logits, params.top_logprobs))
            generated.append(token)
            text += decoder.decode(piece)
            hit = first_stop(text, stops, max(0, sent - 64))
            if hit is not None:
                stopped_on = next(s for s in stops if text.startswith(s, hit))
                if hit > sent:
                    out(text[sent:hit], pending_lp or None)
                text, sent, finish = text[:hit], hit, "stop"
                break
            safe = len(text) - stop_holdback(text, stops)
            if safe > sent or pending_lp:
                out(text[sent:safe], pending_lp or None)
                sent = max(sent, safe)
                pending_lp = []
            if len(generated) >= budget:
                break
        else:  # the stream ended: end of generation, or a batch that saw ``cancel`` first
            finish = "cancelled" if cancel.is_set() else "stop"
        if finish != "cancelled":
            # Text held back as a possible stop-sequence start is real output after all.
            text += decoder.decode(b"", final=True) if hit is None else ""
            if len(text) > sent:
                out(text[sent:], None)
        return Sampled(generated, text, finish, stopped_on)
