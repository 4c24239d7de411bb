from __future__ import annotations

from strata.cli import main

main()
