"""Prometheus text exposition for the server, per model, with no client library: the
counters are plain dicts updated on the event loop (single-threaded, so no locks)."""

from __future__ import annotations

from collections import defaultdict

from strata.core.engine import Engine, Timings
from strata.core.errors import RequestError
from strata.core.models.base import Usage


def _esc(value: str) -> str:
    """A Prometheus label value: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _smooth(old: float | None, new: float | None, weight: float = 0.3) -> float | None:
    """Exponential moving average: recent generations count most, one outlier does not rule."""
    if new is None:
        return old
    return new if old is None else old + weight * (new - old)


TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self.generations: defaultdict[str, int] = defaultdict(int)
        self.errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.tokens_in: defaultdict[str, int] = defaultdict(int)
        self.tokens_out: defaultdict[str, int] = defaultdict(int)
        self.ttft_buckets: defaultdict[str, list[int]] = defaultdict(
            lambda: [0] * (len(TTFT_BUCKETS) + 1)
        )
        self.ttft_sum: defaultdict[str, float] = defaultdict(float)
        # Smoothed speeds (tokens/s) per model, for the models page: (prompt, generation).
        self.speed: dict[str, tuple[float | None, float | None]] = {}
        engine.observers.append(self.observe_generation)

    def observe_request(self, endpoint: str, model: str, status: int) -> None:
        if model not in self.engine.models:
            model = "unknown"  # a client-chosen name must not add a series per request
        self.requests[(endpoint, model, status)] += 1

    def observe_generation(
        self, model: str, usage: Usage | None, timings: Timings, error: BaseException | None
    ) -> None:
        self.generations[model] += 1
        if error is not None:
            kind = "client" if isinstance(error, RequestError) else type(error).__name__
            self.errors[(model, kind)] += 1
        if usage is not None:
            self.tokens_in[model] += usage.prompt_tokens
            self.tokens_out[model] += usage.completion_tokens
        if timings.tokens_per_s is not None or timings.prompt_tokens_per_s is not None:
            prompt, gen = self.speed.get(model, (None, None))
            self.speed[model] = (
                _smooth(prompt, timings.prompt_tokens_per_s),
                _smooth(gen, timings.tokens_per_s),
            )
        if timings.ttft_s is not None:
            buckets = self.ttft_buckets[model]
            for i, bound in enumerate(TTFT_BUCKETS):
                if timings.ttft_s <= bound:
                    buckets[i] += 1
            buckets[-1] += 1
            self.ttft_sum[model] += timings.ttft_s

    def render(self) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, help_: str) -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")

        family("strata_http_requests_total", "counter", "HTTP requests by endpoint and status.")
        for (endpoint, model, status), n in sorted(self.requests.items()):
            lines.append(
                f'strata_http_requests_total{{endpoint="{endpoint}",model="{_esc(model)}",'
                f'status="{status}"}} {n}'
            )
        family("strata_generations_total", "counter", "Generations started, per model.")
        for model, n in sorted(self.generations.items()):
            lines.append(f'strata_generations_total{{model="{_esc(model)}"}} {n}')
        family("strata_generation_errors_total", "counter", "Failed generations by kind.")
        for (model, kind), n in sorted(self.errors.items()):
            lines.append(
                f'strata_generation_errors_total{{model="{_esc(model)}",kind="{kind}"}} {n}'
            )
        family("strata_prompt_tokens_total", "counter", "Prompt tokens processed.")
        for model, n in sorted(self.tokens_in.items()):
            lines.append(f'strata_prompt_tokens_total{{model="{_esc(model)}"}} {n}')
        family("strata_completion_tokens_total", "counter", "Completion tokens generated.")
        for model, n in sorted(self.tokens_out.items()):
            lines.append(f'strata_completion_tokens_total{{model="{_esc(model)}"}} {n}')
        family("strata_time_to_first_token_seconds", "histogram", "Time to first token.")
        for model, buckets in sorted(self.ttft_buckets.items()):
            for bound, count in zip((*TTFT_BUCKETS, "+Inf"), buckets, strict=True):
                lines.append(
                    f"strata_time_to_first_token_seconds_bucket"
                    f'{{model="{_esc(model)}",le="{bound}"}} {count}'
                )
            lines.append(
                f'strata_time_to_first_token_seconds_sum{{model="{_esc(model)}"}} '
                f"{self.ttft_sum[model]:.6f}"
            )
            lines.append(
                f'strata_time_to_first_token_seconds_count{{model="{_esc(model)}"}} {buckets[-1]}'
            )
        family("strata_queue_depth", "gauge", "Requests waiting for a model.")
        for name, handle in sorted(self.engine.models.items()):
            lines.append(f'strata_queue_depth{{model="{_esc(name)}"}} {handle.scheduler.depth}')
        family("strata_active_generations", "gauge", "Generations running now.")
        for name, handle in sorted(self.engine.models.items()):
            lines.append(
                f'strata_active_generations{{model="{_esc(name)}"}} {handle.scheduler.active}'
            )
        family("strata_model_loaded", "gauge", "1 when the model's weights are in memory.")
        for name, handle in sorted(self.engine.models.items()):
            lines.append(
                f'strata_model_loaded{{model="{_esc(name)}"}} {int(handle.backend.loaded)}'
            )
        return "\n".join(lines) + "\n"
