"""Scale out: what strata's distributed pieces give, section by section.

Each section is one function in ``SECTIONS`` (name → function of the parsed arguments,
returning its results and printing its table), run in turn and written under its name in one
JSON file, so sections slot in beside each other and ``--sections`` picks any subset.

``gateway`` and ``replicas`` (``_scale_ray.py``): requests/s through one vs two gateway
replicas on Ray Serve, and tokens/s of the bundled 0.5B model on one vs two model replicas.

    python bench/scale.py --json OUT [--sections gateway replicas] [--rounds 3]
        [--gateway-seconds 10] [--gateway-concurrency 64] [--model-requests 8] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

import _scale_ray
from _common import write_json

console = Console()

SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    **_scale_ray.SECTIONS,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, required=True, help="write the results here")
    parser.add_argument(
        "--sections", nargs="+", choices=sorted(SECTIONS), default=list(SECTIONS), help="run these"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the median is reported)")
    _scale_ray.add_arguments(parser)
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": "2 cores shared with other engineers' work (loaded)"}
    for name in args.sections:
        console.rule(name)
        results[name] = SECTIONS[name](args)
        write_json(args.json, results)
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
