"""Logging that cannot leak the bot token.

httpx logs every request URL at INFO, and Telegram URLs contain the token, so httpx is
quietened, and so is PTB's per-call DEBUG logging (it prints message texts, passphrases
included); a filter on the root handler also masks the token in any record as a last line
of defence (exception texts included).
"""

from __future__ import annotations

import logging
import sys

from telegram.error import InvalidToken

REDACTED = "<token>"


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self._scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and isinstance(record.exc_info[1], InvalidToken):
            # PTB logs it with a traceback before `otcert` reports it in one plain line.
            record.exc_info, record.exc_text = None, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self._scrub(text)
        return True


def setup_logging(level: str, secrets: list[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # PTB's bot logs every API call's parameters and results at DEBUG: that would print
    # the passphrase message. Those loggers never go below INFO.
    # (The Application's DEBUG "Processing update" lines would print a quoted passphrase too.)
    logging.getLogger("telegram").setLevel(max(logging.INFO, logging.getLevelName(level)))
