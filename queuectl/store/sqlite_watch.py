"""Wake an idle SQLite worker the moment another process commits, at no idle cost.

Every commit in WAL mode writes to the `-wal` file, so an inotify watch on it
(IN_MODIFY) turns "poll the database" into "sleep until something was
written". Linux only; where inotify is unavailable the caller falls back to
polling PRAGMA data_version.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select

_IN_MODIFY = 0x00000002
_IN_ATTRIB = 0x00000004
_IN_DELETE_SELF = 0x00000400
_IN_MOVE_SELF = 0x00000800
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC


class WalWatcher:
    """An inotify watch on one file; `wait()` returns early when the file is written."""

    def __init__(self, path: str) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        mask = _IN_MODIFY | _IN_ATTRIB | _IN_DELETE_SELF | _IN_MOVE_SELF
        if libc.inotify_add_watch(self._fd, os.fsencode(path), mask) < 0:
            error = ctypes.get_errno()
            os.close(self._fd)
            raise OSError(error, f"cannot watch {path}")
        self._poller = select.poll()
        self._poller.register(self._fd, select.POLLIN)

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds; True if the file changed meanwhile."""
        if not self._poller.poll(max(0, int(timeout * 1000))):
            return False
        try:
            while os.read(self._fd, 4096):
                pass
        except BlockingIOError:
            pass
        return True

    def close(self) -> None:
        os.close(self._fd)
