"""A program the lab starts and owns (kamailio, baresip): started without blocking the loop,
its output drained (a full pipe would stall it) into a short tail for error reasons, and
stopped by its PID, workers included.

The program runs in a session of its own, so the workers it forks (kamailio's) share its PID
as their process group: whatever outlives the program's own exit is found by that id and
nothing else is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections import deque
from collections.abc import Sequence

HEAD_LINES = TAIL_LINES = 40
# Output lines are kept for error reasons; a password on one must not reach a log.
_SECRET = re.compile(r"(auth_pass=|password=)[^;>\s]*", re.IGNORECASE)


def redact(text: str) -> str:
    return _SECRET.sub(r"\1<secret>", text)


class LabProcess:
    """One running program; `start` it, `until` its output says something, `stop` it."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self._process = process
        # Start-up messages ("ready", a failed bind) come first; later lines may be many.
        self._head: list[str] = []
        self._lines: deque[str] = deque(maxlen=TAIL_LINES)
        self._news = asyncio.Event()
        self._ended = asyncio.Event()
        self._drain = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, name: str, argv: Sequence[str]) -> LabProcess:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        return cls(name, process)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def ended(self) -> bool:
        """The program has exited (and its output is read to the end)."""
        return self._ended.is_set()

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    def saw(self, text: str) -> bool:
        """`text` is in one of the first or the last lines it wrote."""
        return any(text in line for line in (*self._head, *self._lines))

    def tail(self, lines: int = 5) -> str:
        """Its last lines, passwords blanked: for a reason a person reads."""
        return redact(" | ".join(list(self._lines)[-lines:]))

    async def until_saw(self, *texts: str, timeout: float) -> bool:
        """Whether one of `texts` showed in its output within `timeout` s; checked on each
        line the program writes, and final once it has exited."""
        try:
            async with asyncio.timeout(timeout):
                while not any(map(self.saw, texts)) and not self.ended:
                    self._news.clear()
                    await self._news.wait()
        except TimeoutError:
            pass
        return any(map(self.saw, texts))

    async def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            while line := await stdout.readline():
                text = line.decode(errors="replace").rstrip()
                if len(self._head) < HEAD_LINES:
                    self._head.append(text)
                self._lines.append(text)
                self._news.set()
            await self._process.wait()
        finally:
            self._ended.set()
            self._news.set()

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM by PID, SIGKILL after `timeout` s; then SIGKILL any worker it left (its
        process group); every wait bounded."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.terminate()
            try:
                async with asyncio.timeout(timeout):
                    await self._process.wait()
            except TimeoutError:
                self._kill_group()
                async with asyncio.timeout(timeout):
                    await self._process.wait()
        self._kill_group()
        try:
            async with asyncio.timeout(timeout):
                await self._drain
        except TimeoutError:
            # A worker we could not kill holds the pipe open: stop reading, do not hang.
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain

    def _kill_group(self) -> None:
        # The group is the program's own session (start_new_session): its PID is the id. A
        # group with no member left answers ProcessLookupError, and its id is not reused while
        # any member lives.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
