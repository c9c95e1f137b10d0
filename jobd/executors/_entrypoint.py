"""Child-side runner for ``entrypoint`` jobs: import ``pkg.mod:func``, call it, await it.

It runs under the job's interpreter, which may not have jobd installed, so jobd passes this
file's source with ``python -c`` and it uses the standard library only (Python 3.8 and up).
Arguments: ``ENTRYPOINT [PATH...]``; each PATH goes to the front of ``sys.path``.

The function is called with no arguments; a coroutine (or any awaitable) it returns is run
with ``asyncio.run``; its return value is ignored. An exception prints its traceback to
stderr and exits 1; ``SystemExit`` passes through.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
import traceback
from types import TracebackType
from typing import Any

_SKIP_DIRS = (os.path.dirname(asyncio.__file__), os.path.dirname(importlib.__file__))


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """Drop the runner's, importlib's and asyncio's frames in front of the user's own."""
    while tb is not None and tb.tb_next is not None:
        name = tb.tb_frame.f_code.co_filename
        if name != "<string>" and not name.startswith(("<frozen ", *_SKIP_DIRS)):
            break
        tb = tb.tb_next
    return tb


def _fail(message: str) -> int:
    sys.stderr.write(f"jobd: {message}\n")
    return 1


async def _await(awaitable: Any) -> Any:
    return await awaitable


def main(argv: list[str]) -> int:
    if not argv:
        return _fail("usage: ENTRYPOINT [PATH...]")
    spec, paths = argv[0], argv[1:]
    sys.argv = [spec]
    sys.path[0:0] = paths
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        return _fail(f"entrypoint {spec!r} is not of the form 'package.module:function'")
    # line-buffered stdout, so a followed log shows prints as they happen
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True)
    try:
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name or module_name.startswith(f"{exc.name}."):
                return _fail(
                    f"entrypoint {spec!r}: no module named {exc.name!r} (sys.path: {sys.path})"
                )
            raise
        for part in attr.split("."):
            if not hasattr(obj, part):
                return _fail(f"entrypoint {spec!r}: {obj.__name__!r} has no attribute {part!r}")
            obj = getattr(obj, part)
        if not callable(obj):
            return _fail(f"entrypoint {spec!r} is not callable")
        result = obj()
        if inspect.iscoroutine(result):
            asyncio.run(result)
        elif inspect.isawaitable(result):
            asyncio.run(_await(result))
    except Exception as exc:  # the job failed: its traceback, then exit 1
        sys.stdout.flush()
        traceback.print_exception(type(exc), exc, _user_frames(exc.__traceback__))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
