"""baresip's control socket (module ctrl_tcp): menu commands as JSON in netstrings.

Shared by the `baresip` probe (collectors.baresip) and the lab that drives its calls.

A command is `{"command": "uadel", "params": "sip:...", "token": "7"}` sent as the netstring
`<length>:<json>,`; baresip answers `{"response": true, "ok": true, "data": "...", "token":
"7"}` on the same connection, interleaved with events (`{"event": true, "type":
"REGISTER_OK", ...}`), which this client hands to `on_event` when given (`CALL_RTCP` carries a
call's RTCP statistics: collectors.baresip_stats) and reads past otherwise. ctrl_tcp serves ONE
connection: a second client takes the socket over and the first hears nothing more.

baresip 1.0's menu has `uanew <account line>` and `uadel <aor>` (no `uareg`): a room is taken
off its registrar by deleting its user agent, which unregisters first (REGISTER with Expires:
0), and put back by creating it anew.

An answer's data can echo the command's parameters (`uanew` repeats the account line, its
password included): it is never logged, nor put in an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
EventHandler = Callable[[dict[str, Any]], None]

MAX_MESSAGE = 1 << 20  # bytes: a status listing of hundreds of user agents is far below


class BaresipCommandError(RuntimeError):
    """baresip refused a command, or the control connection failed."""


class BaresipControl:
    """One connection to ctrl_tcp; commands one at a time, each answer within its timeout."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_event: EventHandler | None = None,
    ) -> None:
        self._on_event = on_event
        self._reader = reader
        self._writer = writer
        self._tokens = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._lock = asyncio.Lock()
        self._task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(
        cls,
        port: int,
        *,
        host: str = "127.0.0.1",
        timeout: float = 5.0,
        on_event: EventHandler | None = None,
    ) -> BaresipControl:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, on_event)

    @property
    def closed(self) -> bool:
        """The connection ended (baresip closed it, another client took it over, or close())."""
        return self._task.done()

    async def command(self, command: str, params: str = "", *, timeout: float = 5.0) -> str:
        """Run `command`; its answer's data when baresip says ok, else BaresipCommandError
        naming the command (not its parameters)."""
        async with self._lock:
            if self.closed:
                raise BaresipCommandError("baresip control connection closed")
            token = str(next(self._tokens))
            answer = asyncio.get_running_loop().create_future()
            self._pending[token] = answer
            body = json.dumps({"command": command, "params": params, "token": token}).encode()
            try:
                self._writer.write(b"%d:%s," % (len(body), body))
                async with asyncio.timeout(timeout):
                    await self._writer.drain()
                    document = await answer
            except TimeoutError:
                raise BaresipCommandError(
                    f"baresip did not answer {command} within {timeout:g}s"
                ) from None
            except OSError as exc:
                raise BaresipCommandError(f"baresip control connection: {exc}") from None
            finally:
                self._pending.pop(token, None)
        if document.get("ok") is not True:
            # An error's data is baresip's errno text ("No such file or directory").
            error = str(document.get("data", ""))[:80]
            raise BaresipCommandError(f"baresip refused {command}: {error}")
        return str(document.get("data", ""))

    async def _read(self) -> None:
        failure: BaseException = ConnectionError("baresip closed the control connection")
        try:
            while True:
                document = json.loads(await self._netstring())
                if isinstance(document, dict) and document.get("response") is True:
                    answer = self._pending.get(str(document.get("token")))
                    if answer is not None and not answer.done():
                        answer.set_result(document)
                elif isinstance(document, dict) and document.get("event") is True:
                    self._event(document)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ValueError) as exc:
            failure = ConnectionError(f"baresip control connection lost: {type(exc).__name__}")
        finally:
            for answer in self._pending.values():
                if not answer.done():
                    answer.set_exception(failure)

    def _event(self, document: dict[str, Any]) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(document)
        except Exception:  # a listener's bug must not end the control connection
            log.exception("baresip event handler failed", extra={"type": document.get("type")})

    async def _netstring(self) -> bytes:
        head = await self._reader.readuntil(b":")
        length = int(head[:-1].strip(b","))
        if not 0 <= length <= MAX_MESSAGE:
            raise ValueError(f"a control message of {length} bytes")
        message = await self._reader.readexactly(length + 1)
        if message[-1:] != b",":
            raise ValueError("a netstring without its closing comma")
        return message[:-1]

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(2):
                await self._writer.wait_closed()
