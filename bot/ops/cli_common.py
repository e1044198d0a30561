"""What every ``otcert`` command shares: exit codes, the command signature, the CRL report.

Why its own module: the parser (:mod:`bot.ops.cli`) and both command modules need these, and
the command modules must not import :mod:`bot.ops.cli` (it runs as ``__main__`` under
``python -m bot.ops.cli``, which would load it twice).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from bot.config import ConfigError, Settings
from bot.core.results import CrlReport

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

Command = Callable[[Settings, argparse.Namespace], int]


def print_crl_report(settings: Settings) -> int:
    """Write the CRL now (and run the reload command); print where, how many, and the reload."""
    from bot.wiring import open_service

    async def write() -> int:
        async with open_service(settings) as service:
            report = await service.refresh_crl()
        if not report.written:
            raise ConfigError(f"The CRL was not written: {report.error or 'unknown error'}")
        print(f"CRL written to {settings.effective_crl_path} ({report.entries} revoked).")
        if report.reload is not None:
            print(f"  reload: {report.reload.detail}")
        return EXIT_OK

    return asyncio.run(write())


def print_revocation_report(settings: Settings, report: CrlReport) -> int:
    """What a revocation did at the broker, one line each: CRL, reload, kick."""
    if not report.written:
        print(f"otcert: the CRL was NOT written: {report.error}", file=sys.stderr)
        return EXIT_ERROR
    print(f"  CRL: {settings.effective_crl_path} ({report.entries} revoked)")
    for label, outcome in (("reload", report.reload), ("kick", report.kick)):
        if outcome is not None:
            print(f"  {label}: {'ok' if outcome.ok else 'FAILED'}: {outcome.detail}")
    return EXIT_OK
