"""Process hardening at bot start: no core dumps, no /proc peeking, no ptrace.

Why: the bot holds the Telegram token and the CA key in memory. ``prctl(PR_SET_DUMPABLE, 0)``
makes the kernel refuse another process of the same user (a compromised broker running as
the same uid, say) access to this process's memory, ``/proc/<pid>/environ`` and ptrace, and
disables core dumps. Linux only; elsewhere this is a no-op that says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Callable
from typing import cast

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    function = libc.prctl
    function.restype = ctypes.c_int
    return cast(Callable[..., int], function)


def make_undumpable() -> bool:
    """True when the process is now non-dumpable; False (logged) where that is impossible."""
    prctl = _prctl()
    if prctl is None:
        log.warning("not Linux: the process stays dumpable")
        return False
    if prctl(PR_SET_DUMPABLE, ctypes.c_ulong(0), 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_DUMPABLE, 0) failed: errno %d", ctypes.get_errno())
        return False
    return is_dumpable() is False


def is_dumpable() -> bool | None:
    """The kernel's answer for this process, or None off Linux."""
    prctl = _prctl()
    if prctl is None:
        return None
    return bool(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
