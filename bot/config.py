"""Core settings from the environment. Surfaces and agent backends read their own variables.

Every knob has a default that works on a fresh machine with no account.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


def env_number(env: Mapping[str, str], name: str, default: float) -> float:
    """A positive number from ``env[name]`` (``default`` when unset); ``ConfigError`` names the variable."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def env_int(env: Mapping[str, str], name: str, default: int, low: int = 1, high: int | None = None) -> int:
    """A whole number in ``[low, high]`` from ``env[name]`` (``default`` when unset)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be {bound}, got {raw!r}")
    return value


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """True for 1 / true / yes / on (any case)."""
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


#: Pooled connections per boto3 client: as many as turns that may call it at once (a server is sized
#: for 200 concurrent threads). Fewer makes urllib3 drop and reopen connections under load
#: ("Connection pool is full, discarding connection"); an idle pooled connection costs only a socket.
AWS_MAX_CONNECTIONS = 200


class AgentKind(StrEnum):
    """The agent backends, by what they are (``DATATHREAD_AGENT``)."""

    KERNEL = "kernel"  # the embedded default: a local Jupyter kernel per conversation
    BEDROCK_AGENTS = "bedrock-agents"  # Amazon Bedrock Agents (invoke_agent)
    CONVERSE = "converse"  # Bedrock Converse with a code executor (AgentCore or the local kernel)
    SCRIPTED = "scripted"  # fixed answers from DATATHREAD_AGENT_SCRIPT (load tests, demos: bot.agents.script_file)


class StoreKind(StrEnum):
    """Where state and datasets live (``DATATHREAD_STORE``)."""

    LOCAL = "local"  # the embedded default: SQLite and folders under DATATHREAD_HOME
    AWS = "aws"  # DynamoDB, S3 and SQS, shared by several replicas (bot.aws)


@dataclass(frozen=True)
class GatewaySettings:
    """A Jupyter Enterprise Gateway that runs the conversations' kernels (``DATATHREAD_EXECUTOR=gateway``).

    ``url``: ``JUPYTER_GATEWAY_URL`` (http or https); ``auth_token``: ``JUPYTER_GATEWAY_AUTH_TOKEN``, sent as
    ``Authorization: token …``; ``kernel_name``: ``JUPYTER_GATEWAY_KERNEL_NAME`` (the gateway's kernel spec);
    ``transfer_max_bytes``: ``DATATHREAD_GATEWAY_FILE_MAX_MB`` (decimal MB), the largest file copied between
    the conversation's folder and the kernel's disk, either way.
    """

    url: str
    auth_token: str | None = field(default=None, repr=False)
    kernel_name: str = "python3"
    transfer_max_bytes: int = 100 * 1_000_000
    request_timeout: float = 120.0  # a kernel start on a cluster may wait for a pod

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewaySettings | None:
        """The gateway when ``DATATHREAD_EXECUTOR=gateway``, else ``None``; ``ConfigError`` without a usable URL."""
        if env.get("DATATHREAD_EXECUTOR", "").strip().lower() != "gateway":
            return None
        url = env.get("JUPYTER_GATEWAY_URL", "").strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError("DATATHREAD_EXECUTOR=gateway needs JUPYTER_GATEWAY_URL, the gateway's http(s) address "
                              f"(e.g. http://gateway:8888), got {url!r}")
        return cls(
            url=url,
            auth_token=env.get("JUPYTER_GATEWAY_AUTH_TOKEN", "").strip() or None,
            kernel_name=env.get("JUPYTER_GATEWAY_KERNEL_NAME", "").strip() or "python3",
            transfer_max_bytes=int(env_number(env, "DATATHREAD_GATEWAY_FILE_MAX_MB", 100) * 1_000_000),
            request_timeout=env_number(env, "JUPYTER_GATEWAY_REQUEST_TIMEOUT", 120),
        )


#: Wave 1's names, still accepted: "bedrock" meant Converse, "bedrock-agent" Bedrock Agents.
AGENT_ALIASES = {"local": AgentKind.KERNEL, "bedrock-agent": AgentKind.BEDROCK_AGENTS, "bedrock": AgentKind.CONVERSE}


@dataclass(frozen=True)
class Settings:
    home: Path
    retention: timedelta
    page_size: int
    kernel_idle_timeout: float
    run_timeout: float
    kernel_memory_bytes: int
    output_cap_chars: int
    max_upload_bytes: int
    allow_participants: bool
    agent: AgentKind
    configured_secret: str | None = field(default=None, repr=False)  # DATATHREAD_SECRET; never in a repr
    #: Run local kernels in the bubblewrap sandbox (``serve`` turns it on, ``chat --sandbox`` too).
    kernel_sandbox: bool = False
    #: DATATHREAD_UNSAFE_KERNEL=1: ``serve`` may run kernels unsandboxed (the operator accepted the risk).
    unsafe_kernel: bool = False
    kernel_network: bool = False  # DATATHREAD_KERNEL_NETWORK=1: sandboxed kernels share the host's network
    workspace_max_bytes: int = 2048 * 1024 * 1024  # DATATHREAD_WORKSPACE_MAX_MB (MiB)
    kernel_max_processes: int = 256  # DATATHREAD_KERNEL_MAX_PROCESSES: processes and threads per kernel
    #: DATATHREAD_KERNEL_NO_CGROUP=1 turns this off: kernels are limited without a cgroup even where one could
    #: be made (the fallback of unprivileged users and containers, e.g. to test it).
    kernel_cgroup: bool = True
    max_kernels: int = 2  # DATATHREAD_MAX_KERNELS: kernels running at once
    warm_kernels: int = 1  # DATATHREAD_WARM_KERNELS: sandboxed kernels started ahead of need
    web_link_hours: float = 8.0  # DATATHREAD_WEB_LINK_HOURS: how long a workspace link (and its session) lasts
    #: DATATHREAD_PUBLIC_URL: where browsers reach ``datathread serve``; unset, the server's own address.
    public_url: str | None = None
    #: DATATHREAD_MAX_POST_MB (decimal MB): larger workspace files are not posted into a thread.
    max_post_bytes: int = 100 * 1_000_000
    store: StoreKind = StoreKind.LOCAL  # DATATHREAD_STORE
    #: DATATHREAD_EXECUTOR=gateway: kernels run on this Jupyter Enterprise Gateway, not on this host.
    gateway: GatewaySettings | None = None

    @property
    def workspaces(self) -> Path:
        return self.home / "workspaces"

    @property
    def datasets(self) -> Path:
        return self.home / "datasets"

    @property
    def state_db(self) -> Path:
        return self.home / "state.sqlite3"

    def secret(self) -> bytes:
        """The HMAC key for button tokens and file links: ``DATATHREAD_SECRET`` or one kept in home.

        Several replicas must share it (set the variable); a single process keeps its own file.
        """
        if self.configured_secret:
            return self.configured_secret.encode()
        path = self.home / "secret"
        if not path.exists():
            from bot.private import private_dir

            private_dir(self.home)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process on this home created it first: use theirs
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(32))
        for _ in range(50):  # a creator that made it just now may not have written it yet
            text = path.read_text().strip()
            if text:
                return text.encode()
            if time.time() - path.stat().st_mtime > 2:  # an old empty file: nobody is writing it
                break
            time.sleep(0.01)
        raise ConfigError(f"{path} is empty: delete it (a new secret is made) or set DATATHREAD_SECRET")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env`` (``os.environ`` by default); ``ConfigError`` names a bad variable."""
        env = os.environ if env is None else env
        named = env.get("DATATHREAD_AGENT", "").strip().lower()
        if named:
            try:
                agent = AgentKind(AGENT_ALIASES.get(named, named))
            except ValueError:
                choices = ", ".join(AgentKind)
                raise ConfigError(f"DATATHREAD_AGENT must be one of {choices}, got {named!r}") from None
        # Either variable selects Bedrock Agents, so a forgotten alias id is reported by name
        # instead of silently running the local kernel.
        elif env.get("BEDROCK_AGENT_ID") or env.get("BEDROCK_AGENT_ALIAS_ID"):
            agent = AgentKind.BEDROCK_AGENTS
        elif env.get("BEDROCK_MODEL_ID"):
            agent = AgentKind.CONVERSE
        else:
            agent = AgentKind.KERNEL
        store_name = env.get("DATATHREAD_STORE", "").strip().lower() or StoreKind.LOCAL
        try:
            store = StoreKind(store_name)
        except ValueError:
            raise ConfigError(f"DATATHREAD_STORE must be local or aws, got {store_name!r}") from None
        if store is StoreKind.AWS and not env.get("DATATHREAD_SECRET"):
            raise ConfigError(
                "DATATHREAD_STORE=aws needs DATATHREAD_SECRET, the same value on every replica "
                "(a button or file link made by one replica is opened by another)"
            )
        memory_bytes = int(env_number(env, "DATATHREAD_KERNEL_MEMORY_MB", 4096) * 1024 * 1024)  # MiB
        return cls(
            home=Path(env.get("DATATHREAD_HOME") or ".datathread").expanduser().resolve(),
            retention=timedelta(hours=env_number(env, "DATATHREAD_RETENTION_HOURS", 6)),
            page_size=env_int(env, "DATATHREAD_PAGE_SIZE", 20, 1, 100),
            kernel_idle_timeout=env_number(env, "DATATHREAD_KERNEL_IDLE_SECONDS", 15 * 60),
            run_timeout=env_number(env, "DATATHREAD_RUN_TIMEOUT_SECONDS", 120),
            kernel_memory_bytes=memory_bytes,
            output_cap_chars=int(env_number(env, "DATATHREAD_OUTPUT_CAP_CHARS", 4000)),
            # Decimal MB, as sizes are shown to users (human_size): "the limit is 100 MB" means 100,000,000.
            max_upload_bytes=int(env_number(env, "DATATHREAD_MAX_UPLOAD_MB", 100) * 1_000_000),
            max_post_bytes=int(env_number(env, "DATATHREAD_MAX_POST_MB", 100) * 1_000_000),
            allow_participants=env_flag(env, "DATATHREAD_ALLOW_PARTICIPANTS"),
            agent=agent,
            configured_secret=env.get("DATATHREAD_SECRET") or None,
            unsafe_kernel=env_flag(env, "DATATHREAD_UNSAFE_KERNEL"),
            kernel_network=env_flag(env, "DATATHREAD_KERNEL_NETWORK"),
            workspace_max_bytes=env_int(env, "DATATHREAD_WORKSPACE_MAX_MB", 2048) * 1024 * 1024,
            kernel_max_processes=env_int(env, "DATATHREAD_KERNEL_MAX_PROCESSES", 256, 16),
            kernel_cgroup=not env_flag(env, "DATATHREAD_KERNEL_NO_CGROUP"),
            max_kernels=env_int(env, "DATATHREAD_MAX_KERNELS", default_max_kernels(memory_bytes)),
            warm_kernels=env_int(env, "DATATHREAD_WARM_KERNELS", 1, 0),
            web_link_hours=env_number(env, "DATATHREAD_WEB_LINK_HOURS", 8),
            public_url=env.get("DATATHREAD_PUBLIC_URL", "").strip().rstrip("/") or None,
            store=store,
            gateway=GatewaySettings.from_env(env),
        )


def default_max_kernels(kernel_memory_bytes: int) -> int:
    """As many kernels as fit in this machine's memory at their limit, and at least 2."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2
    return max(2, total // max(1, kernel_memory_bytes))
