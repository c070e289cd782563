"""The `shipline` console script: process set-up around the Typer app (`cli.app`)."""

from __future__ import annotations

import gc
import sys


def main() -> None:
    """Entry point of the console script; usage errors exit 2, never with a traceback."""
    # Start-up creates tens of thousands of long-lived objects (modules, classes, Typer's
    # parameters, the workflow's model) and frees almost none: the cyclic collector would
    # run some sixty times during `shipline run`'s start-up, for nothing. It is off until
    # the command has loaded what it needs (`common.started`).
    gc.disable()
    from shipline.cli.app import register

    app = register(sys.argv[1:])
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    finally:
        # Whatever is still alive now is freed with the process: freezing it spares the
        # interpreter's exit a full collection over everything (~10-30 ms).
        gc.freeze()


if __name__ == "__main__":
    main()
