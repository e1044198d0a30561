"""HTTP edge of the fake Telegram server: routes, recording, injected faults, shutdown.

Why separate: what Telegram *answers* lives in _fake_telegram_api.py; how a call travels
(token check, faults that never reach the method, long polls, file downloads) lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from aiohttp import web

from tests._fake_telegram_api import ApiState
from tests._fake_telegram_wire import TIMEOUT_FAULT_HOLD, ApiError, Call, Fault, read_params


async def serve(state: ApiState, sock: socket.socket) -> Callable[[], None]:
    """Start serving on ``sock`` in the running loop; returns a thread-safe stopper."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/bot{token}/{method}", partial(_handle_api, state))
    app.router.add_get("/file/bot{token}/{file_path:.+}", partial(_handle_download, state))
    # handler_cancellation: a held request ends when the client gives up on it
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0,
                           handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    stopping = state.stopping = asyncio.Event()
    state.updates_event = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def shutdown() -> None:
        stopping.set()
        state.wake_pollers()
        await runner.cleanup()

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(15)

    return stop


async def _handle_api(state: ApiState, request: web.Request) -> web.StreamResponse:
    method, started = request.match_info["method"], time.time()
    try:
        params, files = await read_params(request)
    except ValueError:
        params, files = {}, {}
    call = Call(method, params, files, started, 0)
    if request.match_info["token"] != state.token:
        return _answer(state, call, ApiError(401, "Unauthorized").payload())
    name = method.lower()
    with state.cond:
        fault = state.take_fault(name, params) if state.is_method(name) else None
    if fault is not None and fault.kind == "lost_reply":
        # Telegram did the work, but the answer never reaches the bot (a read timeout).
        with state.cond:
            status, payload, _ = state.run_method(name, params, files)
            state.record(replace(call, status=status, fault=fault.kind))
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError
    if fault is not None:
        return await _fail(state, request, call, fault)
    if name == "getupdates":
        return _answer(state, call, {"ok": True, "result": await state.get_updates(params)})
    with state.cond:  # run and record at once, so waiters never see half of a call
        status, payload, fault_name = state.run_method(name, params, files)
        return _answer(state, replace(call, status=status, fault=fault_name), payload)


def _answer(state: ApiState, call: Call, payload: dict[str, object]) -> web.Response:
    """Record ``call`` and answer with ``payload``; serialised under the lock (shared dicts)."""
    status = call.status or (200 if payload.get("ok") else int(str(payload["error_code"])))
    with state.cond:
        body = json.dumps(payload)
        error = None if payload.get("ok") else str(payload.get("description"))
        state.record(replace(call, status=status, error=error))
    return web.Response(status=status, text=body, content_type="application/json")


async def _fail(state: ApiState, request: web.Request, call: Call,
                fault: Fault) -> web.StreamResponse:
    if fault.kind in ("timeout", "drop"):
        state.record(replace(call, fault=fault.kind))
        if fault.kind == "timeout" and state.stopping is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.stopping.wait(), TIMEOUT_FAULT_HOLD)
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp then writes nothing on the dead connection
    error = {
        "429": ApiError(429, f"Too Many Requests: retry after {fault.retry_after}",
                        parameters={"retry_after": fault.retry_after}),
        "500": ApiError(500, "Internal Server Error"),
        "502": ApiError(502, "Bad Gateway"),
        "403": ApiError(403, "Forbidden: bot was blocked by the user"),
    }[fault.kind]
    return _answer(state, replace(call, status=error.status, fault=fault.kind), error.payload())


async def _handle_download(state: ApiState, request: web.Request) -> web.StreamResponse:
    file_id = request.match_info["file_path"].removeprefix("documents/")
    with state.cond:
        stored = state.files.get(file_id)
    if request.match_info["token"] != state.token or stored is None:
        return web.json_response(ApiError(404, "Not Found").payload(), status=404)
    return web.Response(body=stored.upload.content, content_type="application/octet-stream")
