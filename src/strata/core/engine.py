"""The model pool: which models exist, their admission queues, loading and unloading.

Everything that runs a model goes through ``Engine.generate`` so admission, capability
checks, timings and metrics happen in one place whichever route (HTTP, CLI) asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field

from strata.core.admission import FairScheduler, Lease
from strata.core.errors import (
    BackendError,
    InvalidRequest,
    ModelNotFound,
    Preempted,
    StrataError,
)
from strata.core.models.base import Backend, Capability, Chunk, GenerationRequest, Usage
from strata.core.models.registry import create_backend
from strata.core.settings import CoreSettings

log = logging.getLogger("strata.core.engine")


@dataclass
class Timings:
    """Filled in while a generation runs; reported in the ``strata`` response field."""

    queued_s: float = 0.0
    ttft_s: float | None = None
    total_s: float = 0.0
    prompt_tokens_per_s: float | None = None
    tokens_per_s: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        return {
            "queued_s": r(self.queued_s),
            "time_to_first_token_s": r(self.ttft_s),
            "total_s": r(self.total_s),
            "prompt_tokens_per_s": r(self.prompt_tokens_per_s),
            "tokens_per_s": r(self.tokens_per_s),
        }


@dataclass
class ModelStats:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_samples: list[float] = field(default_factory=list)


Observer = Callable[[str, Usage | None, Timings, BaseException | None], None]


class ModelHandle:
    def __init__(self, backend: Backend, scheduler: FairScheduler) -> None:
        self.backend = backend
        self.scheduler = scheduler
        self.last_used = time.monotonic()
        self.loading = False
        self.load_error: str | None = None

    @property
    def name(self) -> str:
        return self.backend.name


class Engine:
    def __init__(self, settings: CoreSettings, backends: dict[str, Backend] | None = None) -> None:
        self.settings = settings
        if backends is None:
            backends = {
                n: create_backend(n, s, settings.home) for n, s in settings.all_models().items()
            }
        self.models: dict[str, ModelHandle] = {}
        for name, backend in backends.items():
            spec = backend.spec
            concurrency = spec.max_concurrency or backend.concurrency
            queue = spec.max_queue if spec.max_queue is not None else settings.max_queue
            # A local model's slots share its machine: background work steps aside for users.
            scheduler = FairScheduler(concurrency, queue, yield_on_admit=backend.local)
            self.models[name] = ModelHandle(backend, scheduler)
        self.observers: list[Observer] = []
        self._starting = 0
        self._tasks: list[asyncio.Task[None]] = []

    def get(self, name: str) -> ModelHandle:
        try:
            return self.models[name]
        except KeyError:
            raise ModelNotFound(
                f"The model '{name}' does not exist. Available: {', '.join(self.models)}",
                param="model",
            ) from None

    @property
    def ready(self) -> bool:
        return self._starting == 0

    async def startup(self) -> None:
        """Start loading the ``load = "startup"`` models in the background (the server
        listens meanwhile and ``/health`` answers 503); start the idle reaper."""
        eager = [h for h in self.models.values() if h.backend.spec.load == "startup"]
        self._starting = len(eager)
        for handle in eager:
            handle.loading = True
        if eager:
            self._tasks.append(asyncio.create_task(self._load_eager(eager)))
        if any(h.backend.spec.idle_unload_s for h in self.models.values()):
            self._tasks.append(asyncio.create_task(self._reap_idle()))

    async def wait_ready(self) -> None:
        """Wait for the start-up loads (for callers that need the models in memory)."""
        while not self.ready:
            await asyncio.sleep(0.05)

    async def _load_eager(self, eager: list[ModelHandle]) -> None:
        for handle in eager:
            try:
                await handle.backend.load()
            except StrataError as exc:  # keep serving the others; requests retry the load
                handle.load_error = exc.message
                log.error("model %s failed to load: %s", handle.name, exc.message)
            finally:
                handle.loading = False
                self._starting -= 1

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for handle in self.models.values():
            await handle.backend.unload()

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for handle in self.models.values():
                idle = handle.backend.spec.idle_unload_s
                busy = handle.scheduler.active or handle.scheduler.depth
                if idle and handle.backend.loaded and not busy and now - handle.last_used > idle:
                    await handle.backend.unload()

    async def tokenizer(self, name: str) -> Backend:
        """A model's backend with its weights loaded, for exact token counts (a session's
        prompt is fitted to the window with the model's own tokenizer)."""
        backend = self.get(name).backend
        await backend.load()
        return backend

    def check(self, handle: ModelHandle, request: GenerationRequest) -> None:
        """Refuse (400) what this model cannot do, before queueing for it."""
        backend = handle.backend
        need = Capability.CHAT if request.kind == "chat" else Capability.COMPLETION
        if not backend.supports(need):
            endpoint = "/v1/chat/completions" if request.kind == "chat" else "/v1/completions"
            raise InvalidRequest(
                f"model '{handle.name}' does not support {endpoint}", param="model"
            )
        params = request.params
        if params.logprobs and not backend.supports(Capability.LOGPROBS):
            raise InvalidRequest(f"model '{handle.name}' cannot return logprobs", param="logprobs")
        if params.response_format.type != "text" and not backend.supports(Capability.JSON_SCHEMA):
            raise InvalidRequest(
                f"model '{handle.name}' does not support response_format", param="response_format"
            )
        if request.passthrough.get("tools") and not backend.supports(Capability.TOOLS):
            raise InvalidRequest(f"model '{handle.name}' does not support tools", param="tools")

    async def generate(
        self,
        name: str,
        request: GenerationRequest,
        *,
        key: str = "",
        timings: Timings,
        record: Callable[[str, Usage], None] | None = None,
        background: bool = False,
    ) -> AsyncGenerator[Chunk, None]:
        """Admit, run and account for one generation on model ``name``; ``key`` names the
        caller's fair queue, ``record`` (a chat turn's bill) is told the usage once known, or
        what was generated when the consumer stopped early. ``background`` work waits behind
        every user's request and raises ``Preempted`` as soon as a user's request arrives for
        its slot (or, on a local model, is admitted beside it), without waiting for its next
        token: a long prompt's prefill may be under way."""
        handle = self.get(name)
        self.check(handle, request)
        started = time.perf_counter()
        usage: Usage | None = None
        pieces = 0
        error: BaseException | None = None
        try:
            async with handle.scheduler.slot(key, background=background) as lease:
                handle.last_used = time.monotonic()
                timings.queued_s = time.perf_counter() - started
                run_start = time.perf_counter()
                stream = handle.backend.generate(request)
                guard = until_preempted(stream, lease, name) if background else None
                try:
                    async for chunk in guard or stream:
                        if lease.preempted:
                            raise Preempted(f"background work on '{name}' yielded to a user")
                        now = time.perf_counter()
                        if chunk.text:
                            pieces += 1
                        if timings.ttft_s is None and (chunk.text or chunk.finish_reason):
                            timings.ttft_s = now - run_start
                        if chunk.usage is not None:
                            usage = chunk.usage
                        yield chunk
                except StrataError:
                    raise
                except Exception as exc:  # a backend bug must still surface as our error
                    raise BackendError(f"model '{name}' failed: {exc}") from exc
                finally:
                    handle.last_used = time.monotonic()
                    # Close the backend's stream before the slot is released, so one that was
                    # abandoned early never overlaps the next generation on this model.
                    if guard is not None:
                        await guard.aclose()
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        await aclose()
                timings.total_s = time.perf_counter() - run_start
                # One chunk (a non-streamed remote answer) says nothing about the token rate.
                if usage is not None and timings.ttft_s and pieces > 1:
                    timings.prompt_tokens_per_s = usage.prompt_tokens / timings.ttft_s
                    decode_s = timings.total_s - timings.ttft_s
                    if usage.completion_tokens > 1 and decode_s > 0:
                        timings.tokens_per_s = (usage.completion_tokens - 1) / decode_s
        except BaseException as exc:
            error = exc
            raise
        finally:
            for observe in self.observers:  # first: the cost meter learns this call's rates
                observe(name, usage, timings, error)
            if record is not None and usage is None and pieces:
                # Stopped before the backend reported usage (a client gone mid-stream): the
                # bill still counts what was generated, one piece a token, as a budget must.
                usage = Usage(_prompt_tokens(handle.backend, request), pieces)
            if record is not None and usage is not None:
                record(name, usage)


async def until_preempted(
    stream: AsyncIterator[Chunk], lease: Lease, name: str
) -> AsyncGenerator[Chunk, None]:
    """``stream``'s chunks until ``lease`` is asked to yield; then the pending step is
    cancelled (the backend stops its generation, as for a client gone) and ``Preempted``
    raised, at once rather than at the next chunk."""
    iterator = aiter(stream)
    yielded = asyncio.ensure_future(lease.yielded.wait())
    step: asyncio.Future[Chunk] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(iterator))
            await asyncio.wait((step, yielded), return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                raise Preempted(f"background work on '{name}' yielded to a user")
            try:
                chunk = step.result()
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        yielded.cancel()
        if step is not None and not step.done():
            step.cancel()
            await asyncio.wait((step,))  # the backend let go before the slot is released


def _prompt_tokens(backend: Backend, request: GenerationRequest) -> int:
    if request.kind == "chat":
        return backend.count_messages(request.messages or [])
    return backend.count_tokens(request.prompt or "")
