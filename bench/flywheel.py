"""The distillation flywheel: does recurring classification traffic move off the big model?

A seeded stream of requests drawn from labelled files (``routing/ag_news.dev.jsonl``:
``{question, choices, answer: letter}``; ``intents/banking77.dev.jsonl``: ``{text, label}``;
both formats accepted) is sent as a real app would: over HTTP to a strata server, as chat
requests with ``model: "auto"`` and a ``response_format`` JSON schema whose ``label`` is the
file's label enum. The server starts from an empty data directory (a temporary
``STRATA_HOME`` unless ``--home``) with no specialist; it learns only from what its big tier
answers, plus feedback carrying the gold label on a seeded share of requests (a user
correcting). Gold labels otherwise only score.

Requests are split evenly across the files, drawn without replacement (a file smaller than
its share is used whole, the others fill in), and interleaved in a seeded order that does not
depend on ``--requests``: a smaller run's items are a subset of a larger one's, so their
cached model calls carry over.

Reported per window of 100 requests: accuracy, the share answered by a specialist, the small
and the big model, and cost per 1,000 requests; and, in the same run, always-small and
always-big on the same seeded sample of stream items (``--big-sample``, default 200;
``--small-every-item`` runs always-small on every item, a small-model call per request even
once a specialist answers them). ``last_window`` is the last 200 requests. The server runs
in this process (uvicorn in a thread, real HTTP), so the model calls can be cached on disk
(``--cache``): a rerun pays only for calls it adds; ``--baselines-only`` fills the cache
ahead with the baselines' calls, and a run reading the same cache picks them up as they land.
Models are priced at strata's own pre-measurement compute estimate, fixed for the run, so a
cached call costs what it did when it ran; a specialist is priced by its measured compute.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file, too

from bench._common import free_port, write_json
from bench._model_cache import ModelCallCache

from strata.core import catalog
from strata.core.engine import Engine
from strata.core.pricing import CostMeter
from strata.core.settings import ModelSpec, Settings, default_home, default_models
from strata.edges.http.app import create_app

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_TRAFFIC = [DATA / "routing" / "ag_news.dev.jsonl", DATA / "intents" / "banking77.dev.jsonl"]
LABELS_IN_PROMPT = 10  # name the labels in the prompt when there are this few


@dataclass
class Item:
    id: str
    task: str
    text: str
    gold: str


@dataclass
class Task:
    name: str
    labels: list[str]
    items: list[Item]


def load_task(path: Path) -> Task:
    """Either format: ``{question, choices, answer: letter}`` or ``{text, label}``."""
    name = path.name.split(".")[0]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    labels: list[str] = []
    items: list[Item] = []
    for n, row in enumerate(rows):
        if "choices" in row:
            choices = [str(c) for c in row["choices"]]
            gold = choices[ord(str(row["answer"]).strip().upper()) - ord("A")]
            text = str(row["question"])
            labels += [c for c in choices if c not in labels]
        else:
            gold, text = str(row["label"]), str(row["text"])
            if gold not in labels:
                labels.append(gold)
        items.append(Item(str(row.get("id", f"{name}/{n}")), name, text, gold))
    if "choices" not in rows[0]:
        labels.sort()
    return Task(name, labels, items)


def stream(tasks: list[Task], requests: int, seed: int) -> list[Item]:
    """Even shares per file, drawn without replacement, interleaved in a seeded order."""
    shares = {t.name: 0 for t in tasks}
    left = requests
    open_tasks = list(tasks)
    while left > 0 and open_tasks:
        each, extra = divmod(left, len(open_tasks))
        for i, task in enumerate(list(open_tasks)):
            want = each + (1 if i < extra else 0)
            take = min(want, len(task.items) - shares[task.name])
            shares[task.name] += take
            left -= take
            if shares[task.name] >= len(task.items):
                open_tasks.remove(task)
    chosen: list[Item] = []
    for task in tasks:
        order = list(task.items)
        random.Random(f"{seed}:{task.name}").shuffle(order)
        chosen += order[: shares[task.name]]

    def rank(item: Item) -> str:  # the same item, the same place, whatever --requests is
        return hashlib.sha256(f"{seed}:{item.id}".encode()).hexdigest()

    return sorted(chosen, key=rank)


def body(item: Item, task: Task, model: str, max_tokens: int, **extra: Any) -> dict[str, Any]:
    system = "Classify the user's message. Answer with the label as JSON."
    if len(task.labels) <= LABELS_IN_PROMPT:
        system += " Labels: " + ", ".join(task.labels) + "."
    schema = {
        "type": "object",
        "properties": {"label": {"enum": task.labels}},
        "required": ["label"],
    }
    return {
        "model": model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": item.text}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "label", "schema": schema},
        },
        "temperature": 0,
        "max_tokens": max_tokens,
        **extra,
    }


def label_of(reply: dict[str, Any]) -> str | None:
    try:
        found = json.loads(reply["choices"][0]["message"]["content"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return found.get("label") if isinstance(found, dict) else None


def tier_of(reply: dict[str, Any], big: str) -> str:
    answered = str(reply["strata"]["route"]["answered_by"])
    return (
        "specialist"
        if answered.startswith("specialist:")
        else "big"
        if answered == big
        else "small"
    )


class Server:
    """uvicorn in a thread: the app sees real HTTP requests."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def bundled_here(home: Path, names: list[str]) -> dict[str, ModelSpec]:
    """The bundled models, loaded from where they are already assembled (the default data
    directory) rather than assembled again into the fresh ``home``."""
    models = {k: v for k, v in default_models().items() if k in names}
    for name, spec in models.items():
        if spec.bundled is None:
            continue
        assembled = catalog.models_dir(default_home()) / catalog.lookup(spec.bundled).filename
        if assembled.exists() and not (catalog.models_dir(home) / assembled.name).exists():
            models[name] = spec.model_copy(update={"path": assembled, "bundled": None})
    return models


def priced_settings(home: Path, args: argparse.Namespace) -> Settings:
    """small and big at strata's compute estimate from their weight files, fixed."""
    models = bundled_here(home, [args.small, args.big])
    probe = Settings(home=home, bundled_models=False, models=models)
    meter = CostMeter(Engine(probe), probe.cpu_hour_usd)
    for name in list(models):
        price = meter.price(name)
        models[name] = models[name].model_copy(
            update={
                "price_input_per_mtok": price.input_per_mtok,
                "price_output_per_mtok": price.output_per_mtok,
            }
        )
    distill = {"retrain_every": args.retrain_every}
    return Settings(home=home, bundled_models=False, models=models, distill=distill)


def model_id(name: str) -> str:
    """The cache's name for a bundled model: its catalog sha256 (the file it was built as)."""
    bundled = default_models()[name].bundled
    return catalog.lookup(bundled).sha256 if bundled else name


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    out: dict[str, Any] = {"requests": n, "acc": sum(r["right"] for r in rows) / n}
    for tier in ("specialist", "small", "big"):
        out[f"{tier}_share"] = sum(r["tier"] == tier for r in rows) / n
    out["cost_per_1k"] = sum(r["cost"] for r in rows) / n * 1000
    return out


def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    tasks = {t.name: t for t in (load_task(p) for p in args.traffic)}
    items = stream(list(tasks.values()), args.requests, args.seed)
    settings = priced_settings(home, args)
    engine = Engine(settings)
    cache = ModelCallCache(args.cache)
    cache.install(engine, {m: model_id(m) for m in (args.small, args.big)})
    prices = {m: engine.get(m).backend.price for m in (args.small, args.big)}
    sample = random.Random(args.seed).sample(items, min(args.big_sample, len(items)))
    feedback = set(
        random.Random(args.seed + 1).sample(
            range(len(items)), round(args.feedback_share * len(items))
        )
    )
    app = create_app(settings, engine)
    rows: list[dict[str, Any]] = []
    baselines: dict[str, list[dict[str, Any]]] = {"small": [], "big": []}
    with (
        Server(app) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=600) as http,
    ):

        def ask(item: Item, model: str, **extra: Any) -> dict[str, Any]:
            reply = http.post(
                "/v1/chat/completions",
                json=body(item, tasks[item.task], model, args.max_tokens, **extra),
            )
            reply.raise_for_status()
            data: dict[str, Any] = reply.json()
            return data

        def direct(model: str, item: Item, **extra: Any) -> None:
            reply = ask(item, model, **extra)
            usage = reply["usage"]
            cost = (
                usage["prompt_tokens"] * prices[model].input_per_mtok
                + usage["completion_tokens"] * prices[model].output_per_mtok
            ) / 1e6
            baselines[model].append(
                {
                    "id": item.id,
                    "task": item.task,
                    "right": label_of(reply) == item.gold,
                    "cost": cost,
                }
            )

        def settle() -> None:
            """Wait for the server's background trainings (a replay from the cache sends
            requests faster than any app would, and faster than a training runs)."""
            while any(s["training"] for s in http.get("/v1/specialists").json()["data"]):
                time.sleep(0.05)

        sampled = {item.id for item in sample}
        started = time.perf_counter()
        for n, item in enumerate(items):
            # Item by item, the baselines first: the small tier's request is the one a
            # route's first tier sends (logprobs for its confidence), and the big one the one
            # its last tier sends, so one cached call serves both; and a run stopped early has
            # every figure on the same items so far (see --checkpoint).
            if item.id in sampled or args.small_every_item:
                direct(args.small, item, logprobs=True, top_logprobs=5)
            if item.id in sampled:
                direct(args.big, item)
            if args.baselines_only:
                if (n + 1) % 50 == 0:
                    print(
                        f"  baselines {n + 1}/{len(items)} (cache {cache.hits} hits,"
                        f" {cache.misses} calls; {time.perf_counter() - started:.0f}s)",
                        file=sys.stderr,
                    )
                continue
            reply = ask(item, args.route)
            route = reply["strata"]["route"]
            rows.append(
                {
                    "id": item.id,
                    "task": item.task,
                    "right": label_of(reply) == item.gold,
                    "tier": tier_of(reply, args.big),
                    "cost": float(route["cost"]),
                    "confidence": route.get("confidence"),
                }
            )
            if n in feedback:
                sent = http.post(
                    "/v1/feedback",
                    json={
                        "response_id": reply["id"],
                        "edited_text": json.dumps({"label": item.gold}),
                    },
                )
                sent.raise_for_status()
            if args.settle:
                settle()
            if (n + 1) % 50 == 0:
                w = summarise(rows[-50:])
                print(
                    f"  {n + 1}/{len(items)}: last 50 acc {w['acc']:.2f}"
                    f" specialist {w['specialist_share']:.0%} big {w['big_share']:.0%}"
                    f" (cache {cache.hits} hits, {cache.misses} calls;"
                    f" {time.perf_counter() - started:.0f}s)",
                    file=sys.stderr,
                )
                if args.checkpoint and baselines["big"]:
                    partial = report(args, tasks, rows, baselines, len(items), len(feedback))
                    partial["specialists"] = http.get("/v1/specialists").json()["data"]
                    partial["partial"] = f"stopped after {n + 1} of {len(items)} requests"
                    write_json(args.checkpoint, partial)
        if args.baselines_only:
            return {"always": baselines, "cache": {"hits": cache.hits, "model_calls": cache.misses}}
        specialists = http.get("/v1/specialists").json()["data"]
        usage = http.get("/v1/usage", params={"route": args.route}).json()
    result = report(args, tasks, rows, baselines, len(items), len(feedback))
    result["specialists"] = specialists
    result["usage"] = {
        k: usage[k]
        for k in ("requests", "cost_usd", "baseline_usd", "saving_usd", "saving_share", "by_route")
    }
    result["cache"] = {"hits": cache.hits, "model_calls": cache.misses}
    result["settings"]["prices_per_mtok"] = {
        m: [p.input_per_mtok, p.output_per_mtok] for m, p in prices.items()
    }
    result["settings"]["cpu_hour_usd"] = settings.cpu_hour_usd
    return result


def report(
    args: argparse.Namespace,
    tasks: dict[str, Task],
    rows: list[dict[str, Any]],
    baselines: dict[str, list[dict[str, Any]]],
    requests: int,
    feedback: int,
) -> dict[str, Any]:
    windows = [
        summarise(rows[i : i + args.window]) | {"start": i}
        for i in range(0, len(rows), args.window)
    ]
    by_task = {
        name: summarise([r for r in rows[-args.last :] if r["task"] == name])
        for name in tasks
        if any(r["task"] == name for r in rows[-args.last :])
    }
    always = {
        m: {
            "acc": sum(r["right"] for r in b) / len(b),
            "cost_per_1k": sum(r["cost"] for r in b) / len(b) * 1000,
            "requests": len(b),
        }
        for m, b in baselines.items()
    }
    always["big"]["sample"] = (
        f"seeded sample of {always['big']['requests']} of the {len(rows)} stream items"
    )
    always["small"]["sample"] = (
        "every stream item"
        if always["small"]["requests"] == len(rows)
        else f"the same seeded sample ({always['small']['requests']} items)"
    )
    for m, b in baselines.items():
        always[m]["by_task"] = {
            name: {
                "acc": sum(r["right"] for r in part) / len(part),
                "cost_per_1k": sum(r["cost"] for r in part) / len(part) * 1000,
                "requests": len(part),
            }
            for name in tasks
            if (part := [r for r in b if r["task"] == name])
        }
    last = summarise(rows[-args.last :])
    big = always["big"]
    return {
        "windows": windows,
        "last_window": last,
        "last_window_by_task": by_task,
        "always_big": big,
        "always_small": always["small"],
        "targets": {
            "big_share_max": 0.25,
            "big_share_ok": last["big_share"] <= 0.25,
            "acc_vs_always_big": last["acc"] / big["acc"] if big["acc"] else None,
            "acc_ok": last["acc"] >= 0.95 * big["acc"],
            "cost_vs_always_big": last["cost_per_1k"] / big["cost_per_1k"],
            "cost_ok": last["cost_per_1k"] <= 0.25 * big["cost_per_1k"],
        },
        "stream": rows,
        "settings": {
            "traffic": [str(p) for p in args.traffic],
            "requests": requests,
            "seed": args.seed,
            "feedback_share": args.feedback_share,
            "feedback_requests": feedback,
            "window": args.window,
            "last": args.last,
            "route": args.route,
            "small": args.small,
            "big": args.big,
            "retrain_every": args.retrain_every,
        },
    }


def table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table("requests", "acc", "specialist", "small", "big", "$/1k")
    for w in result["windows"]:
        t.add_row(
            f"{w['start'] + 1}-{w['start'] + w['requests']}",
            f"{w['acc']:.3f}",
            f"{w['specialist_share']:.0%}",
            f"{w['small_share']:.0%}",
            f"{w['big_share']:.0%}",
            f"{w['cost_per_1k']:.5f}",
        )
    last, big, small = result["last_window"], result["always_big"], result["always_small"]
    t.add_row(
        f"last {last['requests']}",
        f"{last['acc']:.3f}",
        f"{last['specialist_share']:.0%}",
        f"{last['small_share']:.0%}",
        f"{last['big_share']:.0%}",
        f"{last['cost_per_1k']:.5f}",
        style="bold",
    )
    t.add_row(
        f"always-small ({small['requests']}, {'all' if 'every' in small['sample'] else 'sample'})",
        f"{small['acc']:.3f}",
        "",
        "100%",
        "0%",
        f"{small['cost_per_1k']:.5f}",
    )
    t.add_row(
        f"always-big ({big['requests']}, sample)",
        f"{big['acc']:.3f}",
        "",
        "0%",
        "100%",
        f"{big['cost_per_1k']:.5f}",
    )
    Console(width=120).print(t)
    g = result["targets"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print(
        f"last {last['requests']}: big share {last['big_share']:.1%}"
        f" (target <= 25%: {verdict(g['big_share_ok'])});"
        f" accuracy {g['acc_vs_always_big']:.3f} x always-big's"
        f" (target >= 0.95: {verdict(g['acc_ok'])});"
        f" cost {g['cost_vs_always_big']:.1%} of always-big's"
        f" (target <= 25%: {verdict(g['cost_ok'])}). always-big: {big['sample']}."
    )
    for s in result["specialists"]:
        print(
            f"specialist {s['id']}: {s['examples']} examples, v{s['version']},"
            f" accuracy vs big {s['accuracy_vs_big']}, threshold {s['threshold']},"
            f" answers {s['answered_share']:.0%} of its traffic"
            f" ({s['answered_share_recent']:.0%} of the last 100)"
        )


def plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = result["windows"]
    x = [w["start"] + w["requests"] for w in windows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, [w["acc"] for w in windows], marker="o", label="accuracy (flywheel)")
    ax.plot(x, [w["big_share"] for w in windows], marker="s", label="big share")
    ax.plot(x, [w["specialist_share"] for w in windows], marker="^", label="specialist share")
    ax.axhline(
        result["always_big"]["acc"], linestyle="--", color="grey", label="always-big accuracy"
    )
    ax.axhline(
        result["always_small"]["acc"], linestyle=":", color="grey", label="always-small accuracy"
    )
    ax.axhline(0.25, linestyle="-.", color="red", linewidth=0.8, label="big share target")
    ax.set_xlabel("requests")
    ax.set_ylim(0, 1)
    ax.set_title("distillation flywheel: per window of 100 requests")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traffic", type=Path, nargs="+", default=DEFAULT_TRAFFIC)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="write results here (and the plot as .png)")
    parser.add_argument("--home", type=Path, help="data directory (default: a temporary one)")
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "strata-bench" / "flywheel"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--feedback-share", type=float, default=0.05)
    parser.add_argument(
        "--big-sample",
        type=int,
        default=200,
        help="always-big (and always-small) run on a seeded sample of this many stream items",
    )
    parser.add_argument(
        "--small-every-item",
        action="store_true",
        help="always-small on every stream item, not only the sample (a small call per item)",
    )
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--last", type=int, default=200)
    parser.add_argument("--route", default="auto")
    parser.add_argument("--small", default="small")
    parser.add_argument("--big", default="big")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--retrain-every", type=int, default=50)
    parser.add_argument(
        "--checkpoint", type=Path, help="write the figures so far here every 50 requests"
    )
    parser.add_argument(
        "--no-settle",
        dest="settle",
        action="store_false",
        help="send the next request while a specialist is still training (by default the"
        " stream waits: a replay from the cache then decides as the live run did)",
    )
    parser.add_argument(
        "--baselines-only",
        action="store_true",
        help="only the always-small/always-big calls, in stream order: fills --cache ahead"
        " of a flywheel run (which picks up what is appended while it runs)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strata-flywheel-") as tmp:
        result = run(args, args.home or Path(tmp))
    if args.baselines_only:
        print(json.dumps(result["cache"]))
        return
    table(result)
    if args.json:
        png = args.json.with_suffix(".png")
        plot(png, result)
        result["plot"] = str(png)
        write_json(args.json, result)
        print(f"wrote {args.json} and {png}", file=sys.stderr)


if __name__ == "__main__":
    main()
