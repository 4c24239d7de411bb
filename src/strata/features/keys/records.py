"""An issued API key as strata keeps it: never the key itself, only its sha256 (from which its
tenant follows, by the one tenancy rule) and its last four characters to tell keys apart in
a list; plus its limits. Also the budget periods, which are calendar days and months in UTC,
so "when does it reset" has one answer everywhere."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from strata.core.tenancy import tenant_of_digest

Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")
TOKEN_PREFIX = "sk-strata-"
ADJECTIVE = {"day": "daily", "month": "monthly"}


def new_token() -> str:
    """A new key: 256 random bits, URL-safe, with a prefix that says whose key it is."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    digest: str  # sha256 (hex) of the key
    hint: str  # the key's last four characters
    created: float
    budget_usd: float | None = None
    period: Period | None = None
    rpm: int | None = None
    tpm: int | None = None
    revoked: float | None = None

    @property
    def tenant(self) -> str:
        return tenant_of_digest(self.digest)

    @property
    def limited(self) -> bool:
        """Whether anything is enforced per request (budget, rpm, tpm)."""
        return self.budget_usd is not None or self.rpm is not None or self.tpm is not None

    def public(self) -> dict[str, Any]:
        """What a listing shows: everything but the digest."""
        shown = asdict(self)
        shown.pop("digest")
        shown["hint"] = f"{TOKEN_PREFIX}…{self.hint}"
        return {"object": "api_key", "tenant": self.tenant, **shown}


def period_bounds(period: Period, now: float) -> tuple[float, float]:
    """Start and end (Unix seconds) of the UTC day or month holding ``now``."""
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        end = datetime.fromordinal(start.toordinal() + 1).replace(tzinfo=UTC)
    else:
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        end = start.replace(year=year, month=month)
    return start.timestamp(), end.timestamp()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
