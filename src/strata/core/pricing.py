"""What each call costs, in USD.

A model with configured prices (``price_input_per_mtok`` / ``price_output_per_mtok``: remote
APIs) costs exactly those. A local model is priced by the compute it uses: its measured
seconds per prompt token and per generated token (moving averages over its recent calls,
from the engine's timings) × the CPU threads it runs on × ``settings.cpu_hour_usd`` / 3600.
Before a local model has run, its rates are estimated from its weight file's size (compute
per token grows with the parameters read per token); the first measurement replaces that.

Every price is per token, so the same ``Price`` prices a call that ran and estimates one
that did not (the ledger's "what the biggest tier alone would have cost").
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from strata.core.engine import Engine, Timings
from strata.core.errors import CatalogError
from strata.core.models.base import Backend, Price, Usage

# Seconds per token per GB of weights, measured on this project's 2-core reference machine
# (Qwen2.5 1.5B Q4_K_M, 1.1 GB: ~100 prompt tok/s and ~25 generated tok/s).
PROMPT_S_PER_GB = 0.009
DECODE_S_PER_GB = 0.036
SMOOTHING = 0.2
OUTLIER = 10.0  # a measurement this many times the estimate is not a rate


@dataclass
class Rates:
    prompt_s: float  # seconds per prompt token
    decode_s: float  # seconds per generated token
    measured: int = 0


class CostMeter:
    """Per-model prices; observes the engine to keep local models' rates current."""

    def __init__(self, engine: Engine, cpu_hour_usd: float) -> None:
        self.engine = engine
        self.cpu_hour_usd = cpu_hour_usd
        self.rates: dict[str, Rates] = {}
        engine.observers.append(self.observe)

    def _configured(self, backend: Backend) -> bool:
        spec = backend.spec
        return spec.price_input_per_mtok is not None or spec.price_output_per_mtok is not None

    def _threads(self, backend: Backend) -> int:
        return backend.spec.n_threads or os.cpu_count() or 1

    def _prior(self, backend: Backend) -> Rates:
        size_gb = _weights_gb(backend)
        return Rates(PROMPT_S_PER_GB * size_gb, DECODE_S_PER_GB * size_gb)

    def price(self, name: str) -> Price:
        backend = self.engine.get(name).backend
        if self._configured(backend) or not backend.local:
            return backend.price
        rates = self.rates.get(name) or self._prior(backend)
        usd_per_s = self._threads(backend) * self.cpu_hour_usd / 3600
        return Price(rates.prompt_s * usd_per_s * 1e6, rates.decode_s * usd_per_s * 1e6)

    def cost(self, name: str, usage: Usage | None) -> float:
        return 0.0 if usage is None else self.price(name).cost(usage)

    def observe(
        self, name: str, usage: Usage | None, timings: Timings, error: BaseException | None
    ) -> None:
        handle = self.engine.models.get(name)
        if handle is None or error is not None or usage is None or timings.ttft_s is None:
            return
        backend = handle.backend
        if self._configured(backend) or not backend.local or usage.prompt_tokens <= 0:
            return
        prompt_s = timings.ttft_s / usage.prompt_tokens
        decode = timings.total_s - timings.ttft_s
        rates = self.rates.get(name)
        reference = (rates or self._prior(backend)).prompt_s
        if reference > 0 and prompt_s > OUTLIER * reference:
            return  # a lazy load counted in the first token's time, not compute per token
        if rates is None:
            prior = self._prior(backend)
            rates = self.rates[name] = Rates(prompt_s, prior.decode_s)
        else:
            rates.prompt_s += SMOOTHING * (prompt_s - rates.prompt_s)
        if usage.completion_tokens > 1 and decode > 0:
            decode_s = decode / (usage.completion_tokens - 1)
            rates.decode_s += (1.0 if not rates.measured else SMOOTHING) * (
                decode_s - rates.decode_s
            )
            rates.measured += 1


def _weights_gb(backend: Backend) -> float:
    """Size of a local model's weights in GB (0 when unknown, e.g. the fake backend)."""
    spec = backend.spec
    try:
        if spec.path is not None:
            return spec.path.stat().st_size / 1e9
        if spec.bundled is not None:
            from strata.core import catalog

            path = catalog.models_dir(backend.home) / catalog.lookup(spec.bundled).filename
            return path.stat().st_size / 1e9 if path.exists() else 0.0
    except (OSError, CatalogError):  # priced once measured
        return 0.0
    return 0.0
