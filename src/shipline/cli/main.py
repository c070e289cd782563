"""The `shipline` console script: process set-up around the Typer app (`cli.app`)."""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading


def main() -> None:
    """Entry point of the console script; usage errors exit 2, never with a traceback."""
    # Start-up creates tens of thousands of long-lived objects (modules, classes, Typer's
    # parameters, the workflow's model) and frees almost none: the cyclic collector would
    # run some sixty times during `shipline run`'s start-up, for nothing. It is off until
    # the command has loaded what it needs (`common.started`).
    gc.disable()
    from shipline.cli.app import register

    argv = sys.argv[1:]
    app = register(argv)
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except SystemExit as exc:
        if argv[:1] == ["run"]:
            _exit_now(exc)
        raise
    finally:
        # Whatever is still alive now is freed with the process: freezing it spares the
        # interpreter's exit a full collection over everything (~10-30 ms).
        gc.freeze()


def _exit_now(exc: SystemExit) -> None:
    """End `shipline run` without the interpreter's teardown of every module and object
    (10-20 ms, a tenth of a short run): exit handlers run and the standard streams are
    flushed, as at a normal exit. Everything `run` writes is closed by then (files are
    written with `with`). Returns, for a normal exit, if threads other than this are
    still alive."""
    if threading.active_count() > 1:
        return
    code = exc.code
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        sys.stderr.write(f"{code}\n")
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe or stream: nothing more can be said.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
