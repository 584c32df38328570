"""One event loop per process for every call into the channel layer.

The layers keep connections bound to the loop that opened them: channels-postgres keeps one pool for
the whole process, channels-redis one connection per loop. Synchronous publishers (views, jobs,
agents) would otherwise reach them from a new loop on every ``async_to_sync`` call, and a web
process's sockets from yet another.
"""

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None


def layer_loop() -> asyncio.AbstractEventLoop:
    """This process's channel-layer loop, started on first use (again in a forked child)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name="channel layer", daemon=True).start()
        return _loop


def on_layer_loop_sync(call: Callable[..., Awaitable[Any]], *args, timeout: float = 10.0) -> Any:
    """Run the layer's coroutine ``call(*args)`` on the layer loop and wait for its result (from sync code)."""
    return asyncio.run_coroutine_threadsafe(call(*args), layer_loop()).result(timeout)


async def on_layer_loop(call: Callable[..., Awaitable[Any]], *args) -> Any:
    """Await the layer's coroutine ``call(*args)``, run on the layer loop (cancelling it cancels it there)."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(*args), layer_loop()))
