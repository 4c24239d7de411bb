from __future__ import annotations

from strata.edges.cli.main import main

main()
