"""A running job's output file: its kept tail, live publishing, and a cap on disk use.

The job writes to the file directly (O_APPEND). Only the last `limit` bytes are
kept, so once the file takes more than a cap on disk the worker punches a hole
over everything before that tail (fallocate PUNCH_HOLE|KEEP_SIZE): the blocks
go back to the file system, the job keeps appending, nothing it writes is lost,
and the file's size stays the exact count of bytes written. Where a file
system cannot punch holes, the file is cut to zero instead, keeping the tail in
memory (bytes written during the cut can then be lost).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from pathlib import Path

# Free the file's head once it takes more than this many times the kept limit on disk
# (and at least this many bytes).
_CAP_FACTOR = 4
_MIN_CAP_BYTES = 8 * 1024 * 1024
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_BLOCK = 4096


def _punch_hole(path: Path, length: int) -> bool:
    """Free the first `length` bytes of the file's blocks, keeping its size. False if unsupported."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    fd = os.open(path, os.O_WRONLY)
    try:
        mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
        return bool(libc.fallocate(fd, mode, 0, length) == 0)
    finally:
        os.close(fd)


class OutputCapture:
    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self._file = os.fspath(path)  # str: spares pathlib's overhead on every job
        self.limit = limit
        self._lock = threading.Lock()
        self._kept = b""  # tail saved before a cut (only where holes cannot be punched)
        self._cut_bytes = 0  # bytes removed by such cuts
        self._published_total = -1

    def open_for_job(self) -> int:
        """A fresh file for a new run; returns the fd to hand to the job."""
        with self._lock:
            self._kept = b""
            self._cut_bytes = 0
            self._published_total = -1
        # A new file (inode) for every run, never the last one truncated: a process a
        # job left behind (`setsid cmd &`) may still hold the old file open, and must not
        # write into this run's output. It keeps writing into the unlinked file, unseen.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._file)
        return os.open(self._file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)

    def _read_tail(self, size: int) -> bytes:
        if size == 0:
            return b""
        try:
            with open(self.path, "rb") as handle:
                start = max(0, size - self.limit)
                handle.seek(start)
                # Never read(limit): a huge output_limit would allocate that much at once.
                return handle.read(size - start)
        except FileNotFoundError:
            return b""

    def _stat(self) -> tuple[int, int]:
        """(size, bytes allocated on disk)."""
        try:
            status = os.stat(self._file)
        except FileNotFoundError:
            return 0, 0
        return status.st_size, status.st_blocks * 512

    def enforce_cap(self) -> None:
        """Give back the disk space of output that will not be kept. Cheap: one stat."""
        with self._lock:
            self._enforce_cap_locked()

    def _enforce_cap_locked(self) -> int:
        """Returns the file's size after."""
        size, allocated = self._stat()
        if allocated <= max(_MIN_CAP_BYTES, self.limit * _CAP_FACTOR):
            return size
        head = (max(0, size - self.limit) // _BLOCK) * _BLOCK
        if head and not _punch_hole(self.path, head):
            self._kept = (self._kept + self._read_tail(size))[-self.limit :] if self.limit else b""
            self._cut_bytes += size
            os.truncate(self.path, 0)
        return self._stat()[0]

    def snapshot(self) -> tuple[bytes, int]:
        """(kept tail, total bytes written) now."""
        with self._lock:
            size = self._enforce_cap_locked()
            if not size and not self._kept:
                return b"", self._cut_bytes  # most jobs print nothing: no open, no read
            tail = self._read_tail(size)
            combined = (self._kept + tail)[-self.limit :] if self.limit else b""
            return combined, self._cut_bytes + size

    def changed_since_publish(self) -> tuple[bytes, int] | None:
        """A snapshot if output grew since the last one published, else None."""
        with self._lock:
            if self._cut_bytes + self._stat()[0] == self._published_total:
                return None
        data, total = self.snapshot()
        with self._lock:
            self._published_total = total
        return data, total
