"""`--watch`: print a command's output again every few seconds until Ctrl-C.

On a terminal each frame is drawn over the last (cursor home, each line cleared to its
end, then the rest of the screen), so it does not flicker as clear-then-print does and
needs no curses. Piped or redirected, frames follow one another after a blank line, each
under a timestamped header, so the output can be logged or grepped. Ctrl-C ends it with
exit 0, as `watch` and `pueue status` do: stopping is how a watch is meant to end.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone

from queuectl.cli.output import short_time

_HOME = "\x1b[H"
_CLEAR_LINE_END = "\x1b[K"
_CLEAR_BELOW = "\x1b[J"


def watch(render: Callable[[], object], interval: float, title: str, *, plain: bool) -> int:
    """Call `render` (which prints to stdout) every `interval` seconds until Ctrl-C.

    `plain`: frames one after another even on a terminal (a stream of --json documents).
    """
    redraw = not plain and sys.stdout.isatty()
    try:
        while True:
            frame = io.StringIO()
            with contextlib.redirect_stdout(frame):
                render()
            text = frame.getvalue()
            if not plain:
                moment = short_time(datetime.now(timezone.utc))
                text = f"Every {interval:g}s: {title}  {moment}\n\n{text}"
            sys.stdout.write(_on_screen(text) if redraw else text + ("" if plain else "\n"))
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def _on_screen(text: str) -> str:
    """The frame drawn over the previous one, cut to the terminal's height (a frame that
    scrolled the screen would leave the next one drawn from the wrong line)."""
    lines = text.rstrip("\n").split("\n")[: max(1, shutil.get_terminal_size().lines - 1)]
    return _HOME + "".join(line + _CLEAR_LINE_END + "\n" for line in lines) + _CLEAR_BELOW
