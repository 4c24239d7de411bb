"""Budgets and rate limits per issued key: the keys feature's ``Gate`` (``strata.core.turn``).

Admission runs on the event loop with nothing but memory, before any model does:

- **rpm**: requests admitted in the last 60 s (a sliding window); past it, 429
  ``rate_limit_exceeded`` with ``Retry-After`` = when the oldest leaves the window.
- **tpm**: tokens of the last 60 s (counted when a request settles) plus those reserved by
  requests still running; a request reserves its estimate (prompt + ``max_tokens``, per
  choice). Past it, 429 ``rate_limit_exceeded`` with the wait until enough tokens age out.
- **budget**: USD spent this UTC day or month (durable, in the store) plus what running
  requests reserved; a request reserves its estimated price and is refused with 429
  ``insufficient_quota`` if that would pass the budget, naming the budget and its reset.

Settling replaces the reservation with the actual: the priced cost of every generation the
request caused (``Generation.cost``, local compute included) and its tokens. A request that
failed before generating settles with nothing and so only releases what it held; one whose
client left mid-stream settles with what it generated (the engine bills the pieces sent). Since
every admission sees every running request's reservation, a burst cannot spend more than
the budget by more than what those requests cost beyond their estimates.

The estimate of prompt tokens leans high (one token per 3 bytes of text, plus OpenAI's
per-message overhead), so it holds without a tokenizer at hand; a request without
``max_tokens`` reserves ``keys.answer_tokens``. For a dispatcher's name (``auto``) the price
is the dearest served model's, since which tiers will run is not known yet.

The windows and reservations are per process; spending is shared through the store, read
when a process first meets a key in a budget period. Settled spending is written by a
``SpendWriter`` in the background, everything that settled meanwhile in one transaction,
so a request with a budget costs no extra disk sync on its way out (the ledger's row, the
durable account of the request, is still written before the response completes); a crash
can lose the last moments' spending from the next process's starting figure, never a
ledger row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from strata.core.errors import QuotaExceeded, RateLimited
from strata.core.models.base import GenerationRequest, Price
from strata.core.protocols import ModelPool, ModelTiers
from strata.core.tenancy import Caller
from strata.core.turn import Generation
from strata.features.keys.records import ADJECTIVE, KeyRecord, iso, period_bounds
from strata.features.keys.registry import KeyCache
from strata.features.keys.store import KeyStore

WINDOW_S = 60.0
log = logging.getLogger("strata.keys")


@dataclass
class KeyState:
    """One key's running totals in this process."""

    requests: deque[float] = field(default_factory=deque)  # admission times, last minute
    tokens: deque[tuple[float, int]] = field(default_factory=deque)  # settled, last minute
    window_tokens: int = 0
    reserved_tokens: int = 0
    reserved_usd: float = 0.0
    period_start: float | None = None
    spent_usd: float = 0.0

    def prune(self, now: float) -> None:
        while self.requests and self.requests[0] <= now - WINDOW_S:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= now - WINDOW_S:
            self.window_tokens -= self.tokens.popleft()[1]


@dataclass
class Estimate:
    tokens: int
    usd: float


class KeyLimits:
    def __init__(
        self,
        cache: KeyCache,
        store: KeyStore,
        pool: ModelPool,
        costs: ModelTiers,
        answer_tokens: int,
    ) -> None:
        self.cache = cache
        self.store = store
        self.pool = pool
        self.costs = costs
        self.answer_tokens = answer_tokens
        self.states: dict[str, KeyState] = {}
        self.writer = SpendWriter(store)

    # ---- the Gate ----

    def admit(
        self, caller: Caller, model: str, gens: Sequence[GenerationRequest]
    ) -> KeyPass | None:
        if caller.key is None:
            return None
        record = self.cache.by_id.get(caller.key)
        if record is None or not record.limited:
            return None
        state = self.states.setdefault(record.id, KeyState())
        now = time.time()
        state.prune(now)
        estimate = self.estimate(model, gens)
        if record.rpm is not None:
            self._check_rpm(record, state, now)
        if record.tpm is not None:
            self._check_tpm(record, state, estimate, now)
        period_start = None
        if record.budget_usd is not None and record.period is not None:
            period_start, resets = period_bounds(record.period, now)
            self._check_budget(record, state, estimate, period_start, resets)
        state.requests.append(now)
        state.reserved_tokens += estimate.tokens
        state.reserved_usd += estimate.usd
        return KeyPass(self, record, state, estimate, period_start)

    def _check_rpm(self, record: KeyRecord, state: KeyState, now: float) -> None:
        assert record.rpm is not None
        if len(state.requests) < record.rpm:
            return
        wait = state.requests[-record.rpm] + WINDOW_S - now
        raise RateLimited(
            f"Rate limit reached for key '{record.name}' on requests per min (RPM): "
            f"Limit {record.rpm}, Used {len(state.requests)}, Requested 1. "
            f"Please try again in {wait:.1f}s.",
            retry_after=wait,
            kind="requests",
        )

    def _check_tpm(
        self, record: KeyRecord, state: KeyState, estimate: Estimate, now: float
    ) -> None:
        assert record.tpm is not None
        used = state.window_tokens + state.reserved_tokens
        if used + estimate.tokens <= record.tpm:
            return
        if estimate.tokens > record.tpm:
            raise RateLimited(
                f"Request too large for key '{record.name}' on tokens per min (TPM): "
                f"Limit {record.tpm}, Requested {estimate.tokens} (the prompt and max_tokens "
                "for each choice). Lower max_tokens or shorten the prompt.",
                retry_after=WINDOW_S,
                kind="tokens",
            )
        excess, wait = used + estimate.tokens - record.tpm, 1.0  # else: wait for running ones
        for ts, tokens in state.tokens:
            excess -= tokens
            if excess <= 0:
                wait = ts + WINDOW_S - now
                break
        raise RateLimited(
            f"Rate limit reached for key '{record.name}' on tokens per min (TPM): "
            f"Limit {record.tpm}, Used {used}, Requested {estimate.tokens}. "
            f"Please try again in {wait:.1f}s.",
            retry_after=wait,
            kind="tokens",
        )

    def _check_budget(
        self,
        record: KeyRecord,
        state: KeyState,
        estimate: Estimate,
        period_start: float,
        resets: float,
    ) -> None:
        assert record.budget_usd is not None and record.period is not None
        if state.period_start != period_start:
            # Once per key and period in this process: what every process has spent so far.
            state.spent_usd = self.store.spent(record.id, period_start)
            state.period_start = period_start
        committed = state.spent_usd + state.reserved_usd
        if committed + estimate.usd <= record.budget_usd:
            return
        raise QuotaExceeded(
            f"Key '{record.name}' is out of its {ADJECTIVE[record.period]} budget of "
            f"${record.budget_usd:.2f}: ${state.spent_usd:.4f} spent and "
            f"${state.reserved_usd:.4f} held by requests still running, and this request may "
            f"cost up to ${estimate.usd:.4f}. The budget resets at {iso(resets)}.",
            resets_at=resets,
        )

    # ---- estimates ----

    def estimate(self, model: str, gens: Sequence[GenerationRequest]) -> Estimate:
        price = self._price(model)
        tokens = 0
        usd = 0.0
        for gen in gens:
            prompt = _prompt_tokens(gen)
            answer = gen.params.max_tokens or self.answer_tokens
            tokens += prompt + answer
            usd += (prompt * price.input_per_mtok + answer * price.output_per_mtok) / 1e6
        return Estimate(tokens, usd)

    def _price(self, model: str) -> Price:
        if model in self.pool.models:
            return self.costs.price(model)
        prices = [self.costs.price(name) for name in self.pool.models]
        return Price(
            max((p.input_per_mtok for p in prices), default=0.0),
            max((p.output_per_mtok for p in prices), default=0.0),
        )


class KeyPass:
    """One admitted request's reservation, settled once it ends."""

    def __init__(
        self,
        limits: KeyLimits,
        record: KeyRecord,
        state: KeyState,
        estimate: Estimate,
        period_start: float | None,
    ) -> None:
        self.limits = limits
        self.record = record
        self.state = state
        self.estimate = estimate
        self.period_start = period_start

    async def settle(self, generations: Sequence[Generation]) -> None:
        state = self.state
        state.reserved_tokens -= self.estimate.tokens
        state.reserved_usd -= self.estimate.usd
        tokens = sum(g.usage.total_tokens for g in generations)
        usd = sum(g.cost for g in generations)
        if tokens:
            state.tokens.append((time.time(), tokens))
            state.window_tokens += tokens
        if self.period_start is None:
            return
        if state.period_start == self.period_start:
            state.spent_usd += usd
        self.limits.writer.add(self.record.id, self.period_start, usd)


class SpendWriter:
    """Writes settled spending to the store off the request path: one background flush at a
    time, each a single transaction for everything settled since the last."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self.pending: dict[tuple[str, float], tuple[float, int]] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, key_id: str, period_start: float, usd: float) -> None:
        usd_so_far, requests = self.pending.get((key_id, period_start), (0.0, 0))
        self.pending[(key_id, period_start)] = (usd_so_far + usd, requests + 1)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, {}
                try:
                    await self.store.db.run(self.store.add_spend, batch)
                except Exception as exc:  # kept for the next request's flush, not lost
                    log.warning("could not record spending: %s", exc)
                    for where, (usd, requests) in batch.items():
                        usd_so_far, count = self.pending.get(where, (0.0, 0))
                        self.pending[where] = (usd_so_far + usd, count + requests)
                    return
        finally:
            self._task = None

    async def flush(self) -> None:
        """Wait until everything settled so far is in the store."""
        task = self._task
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(task)
        if self.pending:  # a flush that failed, or no loop ran one
            batch, self.pending = self.pending, {}
            await self.store.db.run(self.store.add_spend, batch)


def _prompt_tokens(gen: GenerationRequest) -> int:
    if gen.kind == "completion":
        return 1 + _tokens(gen.prompt or "")
    return 3 + sum(4 + _tokens(_text(m.get("content"))) for m in gen.messages or [])


def _tokens(text: str) -> int:
    return -(-len(text.encode()) // 3)


def _text(content: object) -> str:
    if isinstance(content, list):
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return str(content or "")
