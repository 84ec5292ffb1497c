"""The bubblewrap sandbox a conversation's kernel runs in (Linux), and the limits that hold inside it.

``SandboxPolicy`` says what a kernel may do; ``launch_argv`` turns it into the command that starts
the kernel: ``env -i sh`` (joins the kernel's cgroups, then ``exec``s) ``bwrap … python -m
ipykernel_launcher``. Inside:

* own user, PID, IPC, UTS, cgroup and (unless ``network``) network namespaces; uid/gid 1000, no
  capabilities; ``--die-with-parent`` and the PID namespace end every process of the kernel with it,
  also ones started with ``start_new_session=True``;
* a read-only root built from an allow-list (system folders, the Python environment and our ``bot``
  package only: no ``/root``, ``/home``, ``/run`` sockets, no rest of a checkout), files other users
  may not read masked (the sandbox's uid maps to the bot's own), ``DATATHREAD_HOME`` hidden under an
  empty tmpfs, a private ``/tmp`` and ``/dev`` (so ``/dev/shm`` dies with the kernel), a fresh
  ``/proc`` that shows only the sandbox;
* the conversation's workspace bound read-write at ``WORKSPACE`` (also the cwd), and the folder of
  the kernel's Unix-socket connection files bound at its own host path (both ends must name the
  same socket path);
* an empty environment for bwrap itself (it is PID 1 in the namespace and keeps the environment it
  was started with): the kernel's variables are passed with ``--setenv``.

Memory (including tmpfs and shared memory) and the number of processes are limited by a cgroup
(``KernelCgroup``, v1 or v2) where one can be created (and ``SandboxPolicy.cgroup``); otherwise memory
falls back to the kernel's ``RLIMIT_DATA`` (set by the startup code). Processes are also limited by
``RLIMIT_NPROC``, set inside the sandbox's own user namespace before the kernel starts
(``nproc_limited``): since Linux 5.14 that limit counts the tasks of one user *in one user namespace*
(ucounts), so it bounds this kernel alone, never the bot's other kernels or the host user. It does not
bind processes whose host uid is root (the kernel exempts ``INIT_USER``): a bot running as root relies
on the cgroup. ``probe`` tries it and says which process limit holds (``PROCESS_LIMITS``).
Disk written into the workspace is limited by ``DiskQuota``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bot.config import Settings

log = logging.getLogger(__name__)

#: Where the conversation's workspace appears inside the sandbox (and the kernel's cwd).
WORKSPACE = PurePosixPath("/workspace")
SANDBOX_UID = 1000
#: Top-level system folders visible (read-only) inside; everything else is absent unless bound.
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_CGROUP_PREFIX = "datathread-kernel-"
_QUOTA_POLL = 0.25  # seconds between workspace size checks while code runs

INSTALL_HINT = (
    "install bubblewrap (`apt-get install -y bubblewrap` on Debian/Ubuntu), or set DATATHREAD_UNSAFE_KERNEL=1 "
    "to run users' code unsandboxed as this OS user (anyone who can message the bot can then read its files)"
)


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot build a sandbox on this host; the message says why."""


@dataclass(frozen=True)
class SandboxPolicy:
    """What a sandboxed kernel may use. ``hidden``: host folders never visible inside (the bot's home)."""

    hidden: tuple[Path, ...]
    network: bool = False
    memory_bytes: int = 4096 * 1024 * 1024
    max_processes: int = 256
    workspace_max_bytes: int = 2048 * 1024 * 1024
    #: Use a cgroup for memory and processes where one can be made (off: the rlimits only).
    cgroup: bool = True


@dataclass(frozen=True)
class SandboxReport:
    """What ``probe`` found: whether a sandbox starts, and which protections are active."""

    works: bool
    detail: str
    protections: tuple[str, ...] = ()
    #: Which limit holds a fork bomb: "cgroup", "rlimit" or "none" (see ``PROCESS_LIMITS``).
    process_limit: str = "none"


def policy_for(settings: Settings) -> SandboxPolicy:
    """The sandbox for kernels run with ``settings`` (whether kernels are sandboxed is ``kernel_sandbox``)."""
    return SandboxPolicy(hidden=(settings.home,), network=settings.kernel_network,
                         memory_bytes=settings.kernel_memory_bytes, max_processes=settings.kernel_max_processes,
                         workspace_max_bytes=settings.workspace_max_bytes, cgroup=settings.kernel_cgroup)


def bwrap_path() -> str | None:
    return shutil.which("bwrap") if sys.platform.startswith("linux") else None


def python_roots() -> list[Path]:
    """Folders the kernel's Python needs: the environment, its base interpreter and our ``bot`` package
    (only the package: a source checkout also holds ``.env`` files, ``.git`` and often the bot's home)."""
    package = Path(__file__).resolve().parents[2]
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.executable).resolve().parents[1],
             package}
    return sorted(p.resolve() for p in roots if p.exists())


@functools.cache
def private_entries(tops: tuple[str, ...] = ("/etc", "/opt")) -> tuple[tuple[str, bool], ...]:
    """Files and folders under ``tops`` that other users may not read, as ``(path, is_folder)``.

    The sandbox's uid is the bot's own on the host (root, when the bot runs as root), so the owner's
    permissions apply to it: these are masked so the kernel only reads what any local user could
    (``/etc/shadow``, SSH host keys, private TLS keys). Scanned once per process; ``/usr`` and the
    Python environment are world-readable by convention and too large to scan at every start.
    """
    found: list[tuple[str, bool]] = []
    for top in tops:
        for folder, dirs, files in os.walk(top):
            kept = []
            for name in dirs:
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    mode = os.lstat(path).st_mode
                    if stat.S_ISLNK(mode):
                        continue
                    if mode & 0o005 != 0o005:
                        found.append((path, True))
                    else:
                        kept.append(name)
            dirs[:] = kept
            for name in files:
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    mode = os.lstat(path).st_mode
                    if not stat.S_ISLNK(mode) and not mode & 0o004:
                        found.append((path, False))
    return tuple(found)


def _inside(path: Path, parents: Iterable[Path]) -> bool:
    return any(path == p or p in path.parents for p in parents)


def bwrap_args(policy: SandboxPolicy, workspace: Path, runtime: Path, env: Mapping[str, str]) -> list[str]:
    """The ``bwrap`` options (without the command) for a kernel of ``workspace``."""
    hidden = [h.resolve() for h in policy.hidden]
    args = ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "datathread",
            "--die-with-parent", "--cap-drop", "ALL"]
    if not policy.network:
        args.append("--unshare-net")
    args += ["--tmpfs", "/"]  # a root of our own, read-only at the end: only what is bound below exists
    bound: list[Path] = []
    for top in _SYSTEM:
        path = Path(top)
        if path.is_symlink():  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
            bound.append(path)
    # A private /tmp before the Python environment is bound: mounted later, it would cover an
    # environment (or a checkout with its .venv) that lives under /tmp.
    args += ["--tmpfs", "/tmp"]
    for root in python_roots():
        if not _inside(root, bound) and not _inside(root, hidden):
            args += ["--ro-bind", str(root), str(root)]
            bound.append(root)
    for private, folder in private_entries():
        args += ["--tmpfs", private] if folder else ["--ro-bind", "/dev/null", private]
    for secret in hidden:  # e.g. a DATATHREAD_HOME inside the environment's folder
        if secret.is_dir() and _inside(secret, bound):
            args += ["--tmpfs", str(secret)]
    args += ["--dev", "/dev", "--proc", "/proc",
             "--bind", str(runtime), str(runtime),
             "--bind", str(workspace), str(WORKSPACE), "--chdir", str(WORKSPACE),
             "--remount-ro", "/"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args


#: Run first inside the sandbox, where it is in the sandbox's user namespace: caps the processes and
#: threads of the sandbox's user there, then becomes the command (same pid, so nothing is left over).
_NPROC_SHIM = ("import os, resource, sys; n = int(sys.argv[1]); "
               "resource.setrlimit(resource.RLIMIT_NPROC, (n, n)); os.execv(sys.argv[2], sys.argv[2:])")


def nproc_limited(max_processes: int, command: Sequence[str]) -> list[str]:
    """``command`` (its first item an absolute path) run with ``RLIMIT_NPROC`` = ``max_processes``.

    Set inside the namespace, not before bwrap: the limit a user namespace is created under also caps the
    creator's processes on the host (the ns's parent level), which would make every kernel share one count."""
    return [sys.executable, "-I", "-S", "-c", _NPROC_SHIM, str(max_processes), *command]


def launch_argv(policy: SandboxPolicy, workspace: Path, runtime: Path, env: Mapping[str, str],
                command: Sequence[str], cgroup: KernelCgroup | None) -> list[str]:
    """The full command: an empty environment, the kernel's cgroups joined, then bwrap running ``command``
    with its processes limited (``nproc_limited``)."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
    # The shell joins the cgroups before exec, so every process of the kernel is counted from the start;
    # the second ``env -i`` drops what the shell itself exports (PWD).
    join = 'for f do [ "$f" = -- ] && break; echo $$ > "$f" || exit 97; done; while [ "$1" != -- ]; do shift; done; ' \
           'shift; exec /usr/bin/env -i "$@"'
    procs = [str(p) for p in cgroup.procs_files()] if cgroup is not None else []
    return ["/usr/bin/env", "-i", "/bin/sh", "-c", join, "sh", *procs, "--", bwrap,
            *bwrap_args(policy, workspace, runtime, env), "--", *nproc_limited(policy.max_processes, command)]


def kernel_cgroup(policy: SandboxPolicy) -> KernelCgroup | None:
    """A new cgroup for a kernel of ``policy``, or ``None`` (turned off, or none can be made here). Blocking."""
    return KernelCgroup.create(policy.memory_bytes, policy.max_processes) if policy.cgroup else None


# --- cgroups -----------------------------------------------------------------------------------


class KernelCgroup:
    """Memory and process limits for one kernel, in cgroup v2 or the v1 ``memory`` + ``pids`` hierarchies.

    Created under the bot's own cgroup (so whatever limits the bot also limits its kernels);
    ``remove`` kills what is left in it and deletes it.
    """

    def __init__(self, dirs: Sequence[Path]) -> None:
        self.dirs = tuple(dirs)

    @classmethod
    def create(cls, memory_bytes: int, max_processes: int) -> KernelCgroup | None:
        """A new cgroup with the limits set, or ``None`` where this host gives us none."""
        name = f"{_CGROUP_PREFIX}{uuid.uuid4().hex[:12]}"
        made: list[Path] = []
        try:
            v2 = _own_cgroup("")
            if v2 is not None and {"memory", "pids"} <= set(_read(v2 / "cgroup.controllers").split()):
                _remove_stale(v2)
                folder = v2 / name
                folder.mkdir()
                made.append(folder)
                (folder / "memory.max").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):
                    (folder / "memory.swap.max").write_text("0")
                (folder / "pids.max").write_text(str(max_processes))
                return cls(made)
            memory, pids = _own_cgroup("memory"), _own_cgroup("pids")
            if memory is None or pids is None:
                return None
            for base in (memory, pids):
                _remove_stale(base)
                folder = base / name
                folder.mkdir()
                made.append(folder)
            (made[0] / "memory.limit_in_bytes").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):  # only with swap accounting: no escape into swap either
                (made[0] / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
            (made[1] / "pids.max").write_text(str(max_processes))
            return cls(made)
        except OSError:
            log.debug("no kernel cgroup on this host", exc_info=True)
            for folder in made:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            return None

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.procs_files():
            with contextlib.suppress(OSError, ValueError):
                found |= {int(line) for line in path.read_text().split()}
        return found

    def remove(self) -> None:
        """Kill every process still in the cgroup, then delete it. Blocking; run in a thread."""
        for _ in range(50):
            left = self.pids()
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        for folder in self.dirs:
            with contextlib.suppress(OSError):
                folder.rmdir()


def _remove_stale(base: Path) -> None:
    """Delete empty kernel cgroups a killed bot left behind (a cgroup with processes refuses ``rmdir``;
    young ones may belong to a kernel another bot process is starting right now)."""
    now = time.time()
    for folder in base.glob(f"{_CGROUP_PREFIX}*"):
        with contextlib.suppress(OSError):
            if now - folder.stat().st_mtime > 60:
                folder.rmdir()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _own_cgroup(controller: str) -> Path | None:
    """The folder of this process's cgroup for ``controller`` ("" for v2), if it is writable."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers.split(",") == [controller] or (controller == "" and controllers == ""):
            mount = _CGROUP_ROOT / controller if controller else _CGROUP_ROOT
            if controller == "" and not (mount / "cgroup.controllers").exists():
                mount = _CGROUP_ROOT / "unified"
            folder = mount / path.lstrip("/")
            return folder if folder.is_dir() and os.access(folder, os.W_OK) else None
    return None


# --- processes ---------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """``pid``'s children, grandchildren, … (host pids), found through ``/proc``."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            with contextlib.suppress(OSError, ValueError):
                children = [int(c) for c in Path(f"/proc/{current}/task/{tid}/children").read_text().split()]
                found += children
                todo += children
    return found


def kernel_process(bwrap_pid: int) -> int | None:
    """The host pid of the Python kernel under ``bwrap_pid`` (bwrap's init is in between)."""
    for pid in descendants(bwrap_pid):
        try:
            exe = Path(os.readlink(f"/proc/{pid}/exe")).name
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if exe != "bwrap" and b"ipykernel_launcher" in cmdline:
            return pid
    return None


# --- disk --------------------------------------------------------------------------------------


def folder_size(root: Path) -> int:
    """Bytes of the files under ``root`` (apparent sizes; symlinks not followed)."""
    total = 0
    todo = [root]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    todo.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


class DiskQuota:
    """Keeps what a kernel writes within ``max_bytes`` of workspace.

    Every process of the kernel gets ``RLIMIT_FSIZE`` soft limit = the room left (hard limit =
    ``max_bytes``), so a write past the room fails with ``EFBIG`` in the user's code (shown to the user
    as ``WorkspaceFull``). While code runs the workspace is measured every ``_QUOTA_POLL`` seconds and
    the limit follows the room left (0 once full, more after the code deletes files). The limits are
    set from the host with ``prlimit``. Code that raises its own soft limit (up to the hard one) and
    writes past ``max_bytes`` by more than ``overshoot`` gets its kernel stopped: ``stopped`` is then
    true. (This host may not let even root raise a hard limit again, so the hard limit is never lowered.)
    """

    def __init__(self, workspace: Path, max_bytes: int, root_pid: int) -> None:
        self.workspace = workspace
        self.max_bytes = max_bytes
        self.root_pid = root_pid
        self.overshoot = max(64 * 1024 * 1024, max_bytes // 10)
        self.stopped = False

    async def used(self) -> int:
        return await asyncio.to_thread(folder_size, self.workspace)

    def _limit_all(self, soft: int) -> None:
        for pid in [self.root_pid, *descendants(self.root_pid)]:
            with contextlib.suppress(OSError, ValueError):
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, self.max_bytes))

    async def refresh(self) -> int:
        """Set every process's limit to the room left now; returns that room."""
        used = await self.used()
        if used > self.max_bytes + self.overshoot:
            self.stopped = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.root_pid, signal.SIGKILL)
            return 0
        room = max(0, self.max_bytes - used)
        await asyncio.to_thread(self._limit_all, room)
        return room

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Around a run: limits set before, enforced while it runs, refreshed after."""
        await self.refresh()
        task = asyncio.create_task(self._watch(), name="disk-quota")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.refresh()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(_QUOTA_POLL)
            await self.refresh()


#: How a failed write past the quota looks in the user's code.
QUOTA_ERRNOS = (errno.EFBIG, errno.ENOSPC, errno.EDQUOT)


# --- probe -------------------------------------------------------------------------------------

#: What each process limit means, as ``doctor`` says it.
PROCESS_LIMITS = {
    "cgroup": "a cgroup per kernel (pids controller)",
    "rlimit": "RLIMIT_NPROC in each kernel's own user namespace (no cgroup here)",
    "none": "processes of a kernel are NOT limited: no cgroup (none writable, or DATATHREAD_KERNEL_NO_CGROUP=1) and "
            "RLIMIT_NPROC does not bind the host's root user; run the bot as an unprivileged user or give it a "
            "writable cgroup",
}
#: The sandbox ``_rlimit_holds`` starts: this many tasks allowed, ``_FORK_TRIES`` children attempted.
_PROBE_NPROC, _FORK_TRIES = 8, 32
_FORK_LOOP = f"""
import os, sys, time
made = 0
try:
    for made in range({_FORK_TRIES}):
        if os.fork() == 0:
            time.sleep(30)  # ended with the sandbox's PID namespace when this process exits
            os._exit(0)
except OSError:
    print('limited', made)
    sys.exit(0)
print('unlimited')
"""


def probe(policy: SandboxPolicy) -> SandboxReport:
    """Start a tiny sandbox with ``policy`` and report whether it works and what protects it. Blocking."""
    bwrap = bwrap_path()
    if bwrap is None:
        reason = "bubblewrap (bwrap) is not installed" if sys.platform.startswith("linux") else "needs Linux"
        return SandboxReport(False, reason)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dt-probe-") as tmp:
        workspace, runtime = Path(tmp) / "w", Path(tmp) / "r"
        workspace.mkdir()
        runtime.mkdir()
        cgroup = kernel_cgroup(policy)
        code = "import os; open('ok','w').write(str(os.getuid()))"
        argv = launch_argv(policy, workspace, runtime, {"PATH": "/usr/bin:/bin"}, [sys.executable, "-c", code], cgroup)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return SandboxReport(False, f"bwrap failed: {exc}")
        finally:
            if cgroup is not None:
                cgroup.remove()
        out = workspace / "ok"
        if done.returncode != 0 or not out.exists():
            return SandboxReport(False, f"bwrap failed: {(done.stderr or '').strip()[:200] or done.returncode}")
        limit = "cgroup" if cgroup is not None else "rlimit" if _rlimit_holds(policy, workspace, runtime) else "none"
    processes = {"cgroup": f"at most {policy.max_processes} processes (cgroup)",
                 "rlimit": f"at most {policy.max_processes} processes (RLIMIT_NPROC in the sandbox's user namespace)",
                 "none": "processes not limited (no cgroup; RLIMIT_NPROC does not bind root)"}[limit]
    protections = [
        f"uid {SANDBOX_UID}, own user/PID/IPC namespaces",
        "read-only system, only the conversation folder writable",
        "files other users may not read (e.g. /etc/shadow) masked",
        "bot home and other conversations hidden",
        "network shared with the host (DATATHREAD_KERNEL_NETWORK=1)" if policy.network else "network off",
        f"memory {policy.memory_bytes // 2**20} MiB incl. shared memory (cgroup)" if cgroup is not None
        else f"memory {policy.memory_bytes // 2**20} MiB (rlimit only: shared memory not covered, no cgroup)",
        processes,
        f"workspace disk {policy.workspace_max_bytes // 2**20} MiB",
    ]
    return SandboxReport(True, f"bubblewrap ({bwrap})", tuple(protections), limit)


def _rlimit_holds(policy: SandboxPolicy, workspace: Path, runtime: Path) -> bool:
    """Whether ``nproc_limited`` stops a fork loop in a sandbox here (it does not for a root bot). Blocking."""
    small = SandboxPolicy(hidden=policy.hidden, network=False, max_processes=_PROBE_NPROC, cgroup=False)
    argv = launch_argv(small, workspace, runtime, {"PATH": "/usr/bin:/bin"}, [sys.executable, "-c", _FORK_LOOP],
                       None)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={})
    except (OSError, subprocess.TimeoutExpired):
        log.warning("the process-limit probe did not finish", exc_info=True)
        return False
    return done.stdout.startswith("limited")
