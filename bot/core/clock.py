"""The one clock: every "now" in the bot is timezone-aware UTC and comes from here, so a
test can replace it in one place and no naive local time slips into certificates."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)
