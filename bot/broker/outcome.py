"""The one result type of every broker operation.

Why its own module: the reload command, the dynsec transport and the kick all return it, and
none of them should import another just for this.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BrokerOutcome:
    """What happened, for the log and the admin: ``detail`` is one or two plain sentences."""

    ok: bool
    detail: str
