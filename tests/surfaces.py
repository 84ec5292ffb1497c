"""A recording ``Surface`` for engine tests: the seam is ours, so we fake it by implementing it."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from bot.messages import MessageRef, RemoteFile
from bot.reply import Chart, Reply
from bot.surface import Refused, SurfaceError
from tests.recording_transport import RecordingTransport, Shown

_ids = itertools.count(1)


@dataclass
class Call:
    kind: str
    reply: Reply | None = None
    ref: MessageRef | None = None
    path: Path | None = None
    user: str | None = None
    text: str | None = None
    at: float = 0.0


@dataclass
class RecordingSurface:
    output_chars: int = 2500
    private_notices: bool = True
    #: Whether ``post`` takes ``Chart`` blocks; ``refuse_charts`` then refuses them as Slack's
    #: ``invalid_blocks`` would (``Refused``, and no native charts from then on).
    native_charts: bool = False
    refuse_charts: bool = False
    files: dict[str, bytes] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    uploaded: dict[str, bytes] = field(default_factory=dict)

    def _record(self, call: Call) -> None:
        call.at = asyncio.get_running_loop().time()
        self.calls.append(call)

    def of(self, kind: str) -> list[Call]:
        return [c for c in self.calls if c.kind == kind]

    def live_transport(self) -> RecordingTransport:
        """Each turn's live message is recorded as ``live.start`` (first post), ``live.update`` and
        ``live.finish`` (its final state) calls."""
        ref = MessageRef("C1", f"m{next(_ids)}")
        started: list[bool] = []

        def shown(kind: str, message: Shown) -> None:
            name = "live.finish" if message.final else "live.update" if started else "live.start"
            started.append(True)
            self._record(Call(name, message.reply, ref))

        return RecordingTransport(on_show=shown)

    async def post(self, reply: Reply) -> MessageRef | None:
        if self.refuse_charts and any(isinstance(b, Chart) for b in reply.blocks):
            self.native_charts = False
            self._record(Call("refused", reply))
            raise Refused("charts are not shown as blocks here")
        ref = MessageRef("C1", f"m{next(_ids)}")
        self._record(Call("post", reply, ref))
        return ref

    async def update(self, ref: MessageRef, reply: Reply) -> None:
        self._record(Call("update", reply, ref))

    async def upload(self, path: Path, *, name: str, title: str | None = None) -> None:
        self.uploaded[name] = await asyncio.to_thread(path.read_bytes)
        self._record(Call("upload", path=path, text=title))

    async def set_status(self, text: str | None) -> None:
        self._record(Call("status", text=text))

    async def notify(self, user: str, reply: Reply) -> None:
        self._record(Call("notify", reply, user=user))

    async def download(self, file: RemoteFile, limit: int) -> bytes:
        if file.url not in self.files:
            raise SurfaceError("no access to that file")
        data = self.files[file.url]
        if len(data) > limit:
            raise SurfaceError(f"it is larger than {limit} bytes")
        return data
