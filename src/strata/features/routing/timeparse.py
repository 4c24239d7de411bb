"""Times for usage filters: unix seconds, an ISO 8601 date or datetime (UTC unless it says
otherwise), or a span back from now such as ``24h``, ``7d`` or ``30m``."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from strata.core.errors import InvalidRequest

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(value: str | None, param: str, now: float | None = None) -> float | None:
    if value is None or value == "":
        return None
    text = value.strip()
    span = _SPAN.match(text)
    if span:
        return (now if now is not None else time.time()) - float(span[1]) * _UNITS[span[2]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"'{param}' must be unix seconds, an ISO 8601 time or a span like 24h (got {value!r})",
            param=param,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
