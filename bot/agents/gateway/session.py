"""One conversation's kernel on a Jupyter Enterprise Gateway, through jupyter_server's gateway client.

``GatewayKernelManager`` starts, finds, interrupts and deletes kernels with the gateway's REST API;
``GatewayKernelClient`` carries the Jupyter messages over the gateway's WebSocket. We add two things
the client lacks: the auth header on the WebSocket (jupyter_server sends it on REST calls only), and
waiting for messages without spinning (its ``get_msg`` polls with ``sleep(0)``, a busy loop that
would hold a core for every waiting turn): we poll its queues with a short, growing pause.

The gateway client is configured through one process-wide object (``GatewayClient.instance()``, a
traitlets singleton the library reads everywhere); ``configure`` sets it from ``GatewaySettings``.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import logging
import queue
import socket
import threading
from pathlib import Path, PurePosixPath
from typing import Any

import websocket
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_server.gateway.gateway_client import GatewayClient
from jupyter_server.gateway.managers import GatewayKernelClient, GatewayKernelManager
from jupyter_server.utils import url_escape, url_path_join

from bot.agents.gateway.shipping import ROOT_EXPRESSION, bootstrap_code
from bot.agents.kernel.connection import Message
from bot.agents.kernel.sandbox import DiskQuota
from bot.config import GatewaySettings

log = logging.getLogger(__name__)

_READY_SECONDS = 120.0  # a kernel pod may be scheduled and pull its image first
_MAX_PAUSE = 0.02  # the longest pause between two looks at a message queue


class GatewayError(RuntimeError):
    """The gateway could not be reached, refused us, or could not start a kernel. ``reason`` is short."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def configure(settings: GatewaySettings) -> None:
    """Point jupyter_server's process-wide gateway client at ``settings`` (safe to call again)."""
    client = GatewayClient.instance()
    client.url = settings.url
    client.ws_url = "ws" + settings.url[len("http"):]
    client.auth_token = settings.auth_token or ""
    client.request_timeout = settings.request_timeout
    client.connect_timeout = min(settings.request_timeout, 20.0)
    client._connection_args = {}  # rebuilt from the values above on the next request


def _auth_header() -> list[str]:
    token = GatewayClient.instance().auth_token
    return [f"Authorization: token {token}"] if token else []


class _Client(GatewayKernelClient):
    """``GatewayKernelClient`` that sends the gateway's auth token on the WebSocket too."""

    async def start_channels(self, shell: bool = True, iopub: bool = True, stdin: bool = True,  # type: ignore[override]
                             hb: bool = True, control: bool = True) -> None:
        gateway = GatewayClient.instance()
        url = url_path_join(gateway.ws_url or "", gateway.kernels_endpoint, url_escape(self.kernel_id), "channels")
        # As GatewayKernelClient.start_channels, plus the header (and off the event loop: it blocks), and
        # without websocket-client's UTF-8 check of each text frame: pure Python, ~3 MB/s, it made copying a
        # file back from the kernel crawl; the frames are decoded as UTF-8 JSON right after anyway.
        ssl = {"ca_certs": gateway.ca_certs, "certfile": gateway.client_cert, "keyfile": gateway.client_key}
        self.channel_socket = await asyncio.to_thread(
            websocket.create_connection, url, timeout=gateway.KERNEL_LAUNCH_TIMEOUT, enable_multithread=True,
            sslopt=ssl, header=_auth_header(), skip_utf8_validation=True)
        AsyncKernelClient.start_channels(self, shell=shell, iopub=iopub, stdin=stdin, hb=hb, control=control)
        self.response_router = threading.Thread(target=self._route_responses, daemon=True)
        self.response_router.start()

    def _route_responses(self) -> None:
        # The gateway's WebSocket does not disable Nagle's algorithm (tornado's default): a message waits for
        # the ACK of the one before, which Linux delays up to 40 ms. Acknowledging at once (TCP_QUICKACK, reset by
        # the kernel after a while, so set on every read) takes a silent request from ~52 ms to a few.
        socket_ = getattr(self.channel_socket, "sock", None)
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if socket_ is not None and quickack is not None:
            recv = self.channel_socket.recv  # type: ignore[union-attr]

            def recv_and_ack() -> Any:
                data = recv()
                with contextlib.suppress(OSError):
                    socket_.setsockopt(socket.IPPROTO_TCP, quickack, 1)
                return data

            self.channel_socket.recv = recv_and_ack  # type: ignore[union-attr,method-assign]
        super()._route_responses()


def _reason(exc: BaseException) -> str:
    """What went wrong, in a few words for the thread and ``doctor`` (the details go to the log)."""
    if isinstance(exc, OSError) or isinstance(exc.__cause__, OSError):  # jupyter_server reports these as HTTP 503
        return "the gateway could not be reached"
    code = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    if code == 403:
        return "the gateway refused to start a kernel for this user (HTTP 403)"
    if code == 401:
        return "the gateway rejected the token (HTTP 401): check JUPYTER_GATEWAY_AUTH_TOKEN"
    if code == 404:
        return "the gateway has no such kernel spec (HTTP 404): check JUPYTER_GATEWAY_KERNEL_NAME"
    if code:
        return f"the gateway answered HTTP {code}"
    return f"the gateway did not answer as expected ({type(exc).__name__})"


class GatewaySession:
    """A kernel on the gateway, working in its own folder for one conversation (a ``KernelConnection``).

    ``root`` is that folder on the kernel's disk; ``workspace`` the conversation's folder here. Use
    ``start`` or ``attach``; end with ``shutdown`` (deletes the kernel) or ``detach`` (leaves it running
    for a later ``attach``, by this process after a restart or by another replica).
    """

    files_elsewhere = True
    quota: DiskQuota | None = None

    def __init__(self, manager: GatewayKernelManager, client: _Client, workspace: Path) -> None:
        self._manager = manager
        self._client = client
        self.workspace = workspace
        self.root: PurePosixPath | None = None  # known after ``bootstrap`` or ``find_root``
        self._closed = False
        self._deleted = False
        self._lost = False

    @property
    def kernel_id(self) -> str:
        return str(self._manager.kernel_id)

    @property
    def visible_workspace(self) -> PurePosixPath:
        return self.root or PurePosixPath(".")

    def host_path(self, reported: str) -> str:
        path = PurePosixPath(reported)
        if self.root is not None and (path == self.root or self.root in path.parents):
            return str(self.workspace / path.relative_to(self.root))
        return reported

    @classmethod
    async def start(cls, settings: GatewaySettings, workspace: Path, folder: str, memory_bytes: int) -> GatewaySession:
        """A new kernel of ``settings.kernel_name``, bootstrapped to work in ``folder`` (relative to its cwd).
        Raises ``GatewayError``."""
        manager = GatewayKernelManager(kernel_name=settings.kernel_name, client_factory=_Client)
        try:
            await manager.start_kernel(kernel_name=settings.kernel_name)
        except Exception as exc:
            log.warning("the gateway did not start a kernel", exc_info=True)
            raise GatewayError(_reason(exc)) from exc
        session = await cls._connect(manager, workspace)
        try:
            await session.bootstrap(folder, memory_bytes)
        except BaseException:
            await asyncio.shield(session.shutdown())
            raise
        return session

    @classmethod
    async def attach(cls, kernel_id: str, workspace: Path) -> GatewaySession | None:
        """The running kernel ``kernel_id``, or ``None`` if the gateway no longer has it (culled, ended).
        Raises ``GatewayError`` when the gateway cannot be asked."""
        manager = GatewayKernelManager(client_factory=_Client)
        try:
            await manager.start_kernel(kernel_id=kernel_id)  # with an id: look it up, start nothing
        except Exception as exc:
            raise GatewayError(_reason(exc)) from exc
        if manager.kernel is None:
            return None
        return await cls._connect(manager, workspace)

    @classmethod
    async def _connect(cls, manager: GatewayKernelManager, workspace: Path) -> GatewaySession:
        client = manager.client()
        try:
            await client.start_channels()
        except Exception as exc:
            log.warning("could not open the kernel's WebSocket", exc_info=True)
            with contextlib.suppress(Exception):
                await manager.shutdown_kernel(now=True)
            raise GatewayError(_reason(exc)) from exc
        session = cls(manager, client, workspace)
        try:
            await session._wait_ready()
        except BaseException:
            await asyncio.shield(session.shutdown())
            raise
        return session

    async def _wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READY_SECONDS
        while loop.time() < deadline:
            msg_id = self._client.kernel_info()
            if await self.reply(msg_id, wait=2.0) is not None:
                return
            if self._lost:
                break
        raise GatewayError("the kernel on the gateway did not answer")

    async def bootstrap(self, folder: str, memory_bytes: int) -> None:
        """Install datathread's kernel code and enter ``folder``; sets ``root``."""
        reply = await self.request(bootstrap_code(folder, memory_bytes), {"root": ROOT_EXPRESSION})
        root = _expression(reply, "root")
        if reply.get("status") != "ok" or root is None:
            raise GatewayError(f"the kernel could not run datathread's startup code ({reply.get('ename')})")
        self.root = PurePosixPath(root)

    async def find_root(self) -> bool:
        """Learn ``root`` from a kernel bootstrapped earlier; ``False`` if it was not (e.g. it restarted)."""
        reply = await self.request("", {"root": ROOT_EXPRESSION}, wait=30.0)
        root = _expression(reply, "root")
        if root is None:
            return False
        self.root = PurePosixPath(root)
        return True

    async def value(self, expression: str, wait: float = 60.0) -> Any:
        """The value of a Python literal ``expression`` evaluated in the kernel; ``RuntimeError`` if it fails."""
        reply = await self.request("", {"v": expression}, wait=wait)
        result = reply.get("user_expressions", {}).get("v", {})
        if result.get("status") != "ok":
            raise RuntimeError(f"{result.get('ename')}: {result.get('evalue')}")
        return ast.literal_eval(result["data"]["text/plain"])

    async def run_silently(self, code: str, wait: float = 60.0) -> None:
        """Run ``code``; ``RuntimeError`` if it raised."""
        reply = await self.request(code, wait=wait)
        if reply.get("status") != "ok":
            raise RuntimeError(f"{reply.get('ename')}: {reply.get('evalue')}")

    # -- KernelConnection ---------------------------------------------------------------------------

    def execute(self, code: str, *, store_history: bool = True) -> str:
        return str(self._client.execute(code, store_history=store_history, allow_stdin=False, stop_on_error=False))

    async def _next(self, channel: Any, wait: float) -> Message | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        pause = 0.001
        while True:
            try:
                msg: Message = channel.get_nowait()
                return msg
            except queue.Empty:
                pass
            if channel.response_router_finished:  # the WebSocket closed: the kernel is gone
                self._lost = True
                return None
            left = deadline - loop.time()
            if left <= 0:
                return None
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, _MAX_PAUSE)

    async def message(self, wait: float) -> Message | None:
        if self._closed:
            return None
        return await self._next(self._client.iopub_channel, wait)

    async def reply(self, msg_id: str, wait: float = 5.0) -> Message | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not self._closed and (left := deadline - loop.time()) > 0:
            msg = await self._next(self._client.shell_channel, left)
            if msg is None:
                return None
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                content: Message = msg["content"]
                return content
        return None

    async def request(self, code: str, user_expressions: dict[str, str] | None = None,
                      wait: float = 60.0) -> Message:
        msg_id = self._client.execute(code, silent=True, store_history=False, user_expressions=user_expressions or {},
                                      allow_stdin=False, stop_on_error=False)
        reply = await self.reply(msg_id, wait=wait)
        if reply is None:
            raise TimeoutError("the kernel did not answer")
        return reply

    async def interrupt(self) -> None:
        if self._closed:
            return
        try:
            await self._manager.interrupt_kernel()
        except Exception:
            log.debug("interrupting the gateway kernel failed", exc_info=True)

    async def is_alive(self) -> bool:
        if self._closed or self._lost:
            return False
        try:
            model = await self._manager.refresh_model()
        except Exception:
            log.warning("could not ask the gateway about its kernel", exc_info=True)
            return False
        return model is not None

    async def detach(self) -> None:
        """Close our WebSocket; the kernel keeps running on the gateway. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._client.stop_channels)

    async def shutdown(self) -> None:
        """Delete the kernel on the gateway (its variables and its disk go with it). Safe to call twice."""
        await self.detach()
        if self._deleted:
            return
        self._deleted = True
        try:
            await self._manager.shutdown_kernel(now=True)
        except Exception:
            log.warning("could not delete the gateway kernel %s", self.kernel_id, exc_info=True)


def _expression(reply: Message, name: str) -> str | None:
    result = reply.get("user_expressions", {}).get(name, {})
    if result.get("status") != "ok":
        return None
    value = ast.literal_eval(result.get("data", {}).get("text/plain", "None"))
    return value if isinstance(value, str) else None


async def kernel_specs(settings: GatewaySettings) -> list[str]:
    """The kernel spec names the gateway offers (``doctor``); raises ``GatewayError``."""
    from jupyter_server.gateway.gateway_client import gateway_request

    configure(settings)
    gateway = GatewayClient.instance()
    try:
        response = await gateway_request(url_path_join(settings.url, gateway.kernelspecs_endpoint), method="GET")
    except Exception as exc:
        raise GatewayError(_reason(exc)) from exc
    return sorted(json.loads(response.body).get("kernelspecs", {}))
