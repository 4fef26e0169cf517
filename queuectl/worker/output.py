"""A running job's output file: its kept tail, live publishing, and a cap on disk use.

The job writes to the file directly (O_APPEND). Only the last `limit` bytes are
kept, so when the file grows past a cap the worker keeps its tail in memory and
cuts the file back to zero; the job keeps appending from there. Bytes written
between that read and the cut can be lost: the kept tail is exact except
around a cut, and a runaway job never fills the disk.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

# Cut the file when it exceeds this many times the kept limit (and at least this many bytes).
_CUT_FACTOR = 4
_MIN_CUT_BYTES = 8 * 1024 * 1024


class OutputCapture:
    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self._lock = threading.Lock()
        self._kept = b""  # tail saved from before the last cut
        self._cut_bytes = 0  # bytes dropped from the file by cuts
        self._published_total = -1

    def open_for_job(self) -> int:
        """A fresh file for a new run; returns the fd to hand to the job."""
        with self._lock:
            self._kept = b""
            self._cut_bytes = 0
            self._published_total = -1
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)

    def _read_tail(self, size: int) -> bytes:
        if size == 0:
            return b""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(max(0, size - self.limit))
                return handle.read(self.limit)
        except FileNotFoundError:
            return b""

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def snapshot(self) -> tuple[bytes, int]:
        """(kept tail, total bytes written) now; cuts the file if it grew past the cap."""
        with self._lock:
            size = self._size()
            tail = self._read_tail(size)
            combined = (self._kept + tail)[-self.limit :] if self.limit else b""
            total = self._cut_bytes + size
            if size > max(_MIN_CUT_BYTES, self.limit * _CUT_FACTOR):
                self._kept = combined
                self._cut_bytes += size
                os.truncate(self.path, 0)
            return combined, total

    def changed_since_publish(self) -> tuple[bytes, int] | None:
        """A snapshot if output grew since the last one published, else None."""
        with self._lock:
            if self._cut_bytes + self._size() == self._published_total:
                return None
        data, total = self.snapshot()
        with self._lock:
            self._published_total = total
        return data, total
