"""A model served by Ray Serve replicas, called through a deployment handle.

The gateway's ``Engine`` holds one ``RayBackend`` per local model in place of the model
itself, so admission, fair queues, capability checks, timings and billing run in the gateway
exactly as they do in one process; only the generation crosses to a replica. The replica
(``strata.edges.ray.deployments.ModelServer``) streams ``Chunk``s back, and sends a
``StrataError`` as an item rather than raising it, so the error arrives with its own type and
message instead of Ray's wrapper.

When a replica dies mid-request Ray Serve routes the next call to a live replica, and this
backend makes that call (up to ``retries`` times):

- Reproducible sampling (``temperature`` 0 or a ``seed``), streamed or not: chunks pass on
  as they come; a retry regenerates the answer from the start, checks that it begins with
  exactly the text already passed on, and passes on only what follows.
- Free sampling, not streamed: the answer is collected whole from the replica before it is
  passed on, so a retry starts it afresh and the caller sees one clean answer.
- Free sampling, streamed: retried while nothing was sent yet; once text was sent it is not,
  since another replica's answer would not continue the one the client has half read: the
  client gets an error instead of a spliced answer.

Chunks pass on as they come wherever a retry allows it, because the engine checks between
chunks whether background work must yield to a user (a summary is greedy, so it streams).

Ray is imported only when a request runs, so importing this module costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from strata.core.errors import BackendError, BackendUnavailable, StrataError
from strata.core.models.base import Backend, Capability, Chunk, GenerationRequest
from strata.core.settings import ModelSpec

log = logging.getLogger("strata.core.models.ray")


def _replica_lost() -> tuple[type[BaseException], ...]:
    """The errors that mean the replica went away (not that the request was bad)."""
    from ray.exceptions import ActorUnavailableError, RayActorError

    return (RayActorError, ActorUnavailableError)


def reproducible(request: GenerationRequest) -> bool:
    """Whether a second run of ``request`` gives the same text (greedy, or a fixed seed)."""
    return request.params.temperature == 0 or request.params.seed is not None


class RayBackend(Backend):
    """Stands for ``inner`` (the model's own backend, never loaded here: it answers for
    capabilities, window, price and token counts) and runs generations on its replicas."""

    kind = "ray"
    local = True

    def __init__(
        self,
        name: str,
        spec: ModelSpec,
        home: Path | None = None,
        *,
        inner: Backend,
        handle: Any,
        retries: int = 2,
    ) -> None:
        super().__init__(name, spec, home)
        self.inner = inner
        self.capabilities = inner.capabilities
        self.handle = handle
        self.retries = retries
        self.retried = 0  # requests that moved to another replica (tests, metrics)
        self._loaded = False

    @property
    def context_window(self) -> int | None:
        return self.inner.context_window

    @property
    def price(self) -> Any:
        return self.inner.price

    @property
    def loaded(self) -> bool:
        return self._loaded

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def count_messages(self, messages: list[dict[str, Any]]) -> int:
        return self.inner.count_messages(messages)

    async def load(self) -> None:
        """Have a replica load its weights; learn what the loaded model can do (a GGUF
        without a chat template narrows its capabilities)."""
        offered = await self._call("load")
        self.capabilities = frozenset(Capability(c) for c in offered)
        self._loaded = True

    async def unload(self) -> None:
        # The replicas own their weights and Ray Serve their lifetime; nothing to free here.
        self._loaded = False

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        vectors, tokens = await self._call("embed", texts)
        return vectors, tokens

    async def _call(self, method: str, *args: Any) -> Any:
        """One unary call on a replica, on another when it dies; a ``StrataError`` the
        replica returns is raised here as itself."""
        for attempt in range(self.retries + 1):
            try:
                result = await getattr(self.handle, method).remote(*args)
            except _replica_lost() as exc:
                self._note_retry(attempt, exc, "")
                continue
            if isinstance(result, StrataError):
                raise result
            return result
        raise AssertionError("unreachable: _note_retry raises on the last attempt")

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self._loaded = True
        sent = ""  # text already handed to the caller
        for attempt in range(self.retries + 1):
            stream = self.handle.options(stream=True).generate.remote(request)
            try:
                if not request.stream and not reproducible(request):
                    for chunk in _coalesce([_unwrap(item) async for item in stream]):
                        yield chunk
                    return
                async for chunk in _resume(stream, sent):
                    sent += chunk.text
                    yield chunk
                return
            except _replica_lost() as exc:
                if sent and not reproducible(request):
                    raise BackendUnavailable(
                        f"model '{self.name}': its replica died after {len(sent)} characters "
                        "were streamed; free sampling cannot resume on another replica"
                    ) from exc
                self._note_retry(attempt, exc, sent)
            finally:
                stream.cancel()  # the consumer stopped early: the replica stops too

    def _note_retry(self, attempt: int, exc: BaseException, sent: str) -> None:
        if attempt >= self.retries:
            raise BackendUnavailable(
                f"model '{self.name}': replicas kept failing ({attempt + 1} tries): {exc}"
            ) from exc
        self.retried += 1
        log.warning(
            "model %s: replica lost (%s); retrying on another (%d characters sent)",
            self.name,
            type(exc).__name__,
            len(sent),
        )


def _unwrap(item: Any) -> Chunk:
    if isinstance(item, StrataError):
        raise item
    if not isinstance(item, Chunk):
        raise BackendError(f"a replica sent {type(item).__name__}, not a Chunk")
    return item


def _coalesce(chunks: list[Chunk]) -> list[Chunk]:
    """A collected answer as few chunks as it can be (its text and logprobs in one; a tool
    call's chunk kept apart), so the engine does not take chunks replayed all at once for a
    token rate."""
    out: list[Chunk] = []
    for chunk in chunks:
        last = out[-1] if out else None
        if last is None or last.extra is not None or chunk.extra is not None or last.usage:
            out.append(chunk)
            continue
        last.text += chunk.text
        if chunk.logprobs:
            last.logprobs = [*(last.logprobs or []), *chunk.logprobs]
        last.finish_reason, last.usage = chunk.finish_reason, chunk.usage
    return out


async def _resume(stream: AsyncIterator[Any], sent: str) -> AsyncIterator[Chunk]:
    """The chunks of a regenerated answer after the first ``len(sent)`` characters, which
    must equal ``sent``: a replayed answer that differs is an error, never spliced."""
    pending = sent
    async for item in stream:
        chunk = _unwrap(item)
        if pending:
            text = chunk.text
            n = min(len(pending), len(text))
            if text[:n] != pending[:n] or (chunk.finish_reason and len(text) < len(pending)):
                raise BackendError("a retried stream did not repeat what was already sent")
            pending = pending[n:]
            chunk = Chunk(
                text=text[n:],
                logprobs=chunk.logprobs if n == 0 else None,
                finish_reason=chunk.finish_reason,
                usage=chunk.usage,
                extra=chunk.extra,
            )
            if not (chunk.text or chunk.finish_reason or chunk.usage or chunk.extra):
                continue
        yield chunk
