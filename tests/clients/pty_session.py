"""Drive an interactive command-line program under a pseudo-terminal, with bounded waits
(the standard library only: os.openpty, subprocess, select)."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Sequence


class PtyTimeout(AssertionError):
    """An expected output did not appear in time."""


class PtySession:
    """A program whose stdin, stdout and stderr are one pseudo-terminal."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None,
                 cwd: str | None = None) -> None:
        master, slave = os.openpty()
        self.master = master
        self.output = b""
        try:
            self.proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave,
                                         env=env, cwd=cwd, start_new_session=True,
                                         close_fds=True)
        finally:
            os.close(slave)

    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def _read_some(self, until: float) -> bool:
        """Read what is available before ``until``; False once the program closed the pty."""
        ready, _, _ = select.select([self.master], [], [], max(0.0, min(0.2, until -
                                                                       time.monotonic())))
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the program exited and the pty is closed
            return False
        if not data:
            return False
        self.output += data
        return True

    def expect(self, pattern: str | re.Pattern[str], timeout: float = 15.0,
               start: int = 0) -> re.Match[str]:
        """Wait until the output (from character ``start``) matches ``pattern``."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.text(), start)
            if match:
                return match
            if time.monotonic() >= deadline or not self._read_some(deadline):
                if (match := regex.search(self.text(), start)) is not None:
                    return match
                raise PtyTimeout(f"{regex.pattern!r} not seen within {timeout} s; output:\n"
                                 f"{self.text()}")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, timeout: float = 15.0) -> int:
        """Read until the program exits; return its exit code."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            if not self._read_some(deadline):
                break
        return self.proc.wait(max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        with contextlib.suppress(OSError):
            os.close(self.master)
