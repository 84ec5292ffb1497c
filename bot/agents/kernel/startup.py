"""Code that runs *inside* a conversation's Jupyter kernel (imported by the startup cell).

The host runs ``install(workspace, memory_bytes)`` silently once per kernel start. Afterwards:

* a displayed DataFrame or Series (last expression or ``display``) is written to an Arrow IPC file
  under ``<workspace>/.datathread/frames/`` and sent as a ``FRAME_MIME`` bundle, with a one-line
  ``text/plain`` instead of the table (the host shows the dataset, not the repr);
* matplotlib draws with our backend (``bot.agents.kernel.mpl_backend``): ``plt.show()`` and figures left
  open at the end of a cell are saved as ``figures/figure-<n>.png`` and sent as ``FIGURE_MIME``;
* the kernel's data segment is capped (``RLIMIT_DATA``) and tracebacks have no colours;
* files the code creates are private to this OS user (umask 077), like everything under the home.

Only the standard library is imported at module import: the kernel must start fast, and pandas,
pyarrow and matplotlib are loaded by the user's code when it needs them.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import IO, Any

FRAME_MIME = "application/vnd.datathread.frame+json"
FIGURE_MIME = "application/vnd.datathread.figure+json"
EXIT_MIME = "application/vnd.datathread.exit+json"
#: The matplotlib backend the host selects through ``MPLBACKEND`` in the kernel's environment.
MPL_BACKEND = "module://bot.agents.kernel.mpl_backend"

_workspace: Path | None = None


def workspace() -> Path:
    """The conversation workspace, fixed at install time (the user may ``os.chdir`` away)."""
    return _workspace if _workspace is not None else Path.cwd()


def install(workspace_root: str, memory_bytes: int) -> None:
    """Set up the kernel for a conversation. Safe to call again."""
    global _workspace
    _workspace = Path(workspace_root)
    _limit_memory(memory_bytes)
    os.umask(0o077)
    os.environ["MPLBACKEND"] = MPL_BACKEND
    if "matplotlib" in sys.modules:  # imported before us (not by a fresh kernel): switch now
        import matplotlib

        matplotlib.use(MPL_BACKEND)
    ip = _ipython()
    if ip is None:
        return
    with contextlib.suppress(Exception):  # an IPython without the magic: the host strips ANSI anyway
        ip.run_line_magic("colors", "nocolor")
    bundles = ip.display_formatter.mimebundle_formatter
    # pandas ≥ 3 reports its classes as ``pandas.DataFrame``; older ones by their defining module.
    for module, cls in (("pandas", "DataFrame"), ("pandas.core.frame", "DataFrame"), ("pandas", "Series"),
                        ("pandas.core.series", "Series")):
        bundles.for_type_by_name(module, cls, frame_bundle)
    if flush_figures not in ip.events.callbacks["post_run_cell"]:
        ip.events.register("post_run_cell", flush_figures)


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _limit_memory(limit: int) -> None:
    """Cap the data segment: a runaway allocation raises ``MemoryError`` instead of taking the host.

    ``RLIMIT_DATA`` (Linux ≥ 4.7 counts anonymous mappings) tracks real allocations; ``RLIMIT_AS``
    would also count the gigabytes of address space libraries reserve and never touch.
    """
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    which = getattr(resource, "RLIMIT_DATA", None) or resource.RLIMIT_AS
    _, hard = resource.getrlimit(which)
    value = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(which, (value, value))


# --- datasets --------------------------------------------------------------------------------


def frame_bundle(obj: Any) -> dict[str, Any] | None:
    """The mime bundle for a displayed DataFrame / Series; ``None`` falls back to pandas' repr.

    Never raises: IPython would print a formatter traceback into the user's output.
    """
    try:
        return _frame_bundle(obj)
    except Exception as exc:
        print(f"(could not keep this table as a dataset: {type(exc).__name__}: {exc})", file=sys.stderr)
        return None


def _frame_bundle(obj: Any) -> dict[str, Any]:
    import pandas as pd

    name = variable_name(obj)
    if isinstance(obj, pd.Series):
        if name == "result" and isinstance(obj.name, str) and obj.name.isidentifier():
            name = obj.name  # display(df.price) is best called "price"
        frame = obj.to_frame(name=obj.name if obj.name is not None else name)
    else:
        frame = obj
    frame = _tidy(frame)
    folder = workspace() / ".datathread" / "frames"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.arrow"
    _write_arrow(frame, path)
    rows, cols = frame.shape
    return {
        "text/plain": f"{name}: {rows:,} rows × {cols} columns",
        FRAME_MIME: {"path": str(path), "name": name, "rows": int(rows), "columns": int(cols)},
    }


def variable_name(obj: Any) -> str:
    """The user's variable bound to ``obj`` (not ``_``, ``Out`` and friends), else ``result``."""
    ip = _ipython()
    if ip is None:
        return "result"
    hidden = ip.user_ns_hidden
    for key, value in list(ip.user_ns.items()):
        if value is obj and not key.startswith("_") and key not in hidden:
            return str(key)
    return "result"


def _tidy(frame: Any) -> Any:
    """Flat, unique string column names; a meaningful index becomes columns."""
    import pandas as pd

    index = frame.index
    plain_index = index.name is None and not isinstance(index, pd.MultiIndex) and pd.api.types.is_integer_dtype(
        index.dtype
    )
    if not plain_index:
        frame = frame.reset_index(allow_duplicates=True)
    names: list[str] = []
    seen: set[str] = set()
    for col in frame.columns:
        label = " / ".join(str(p) for p in col) if isinstance(col, tuple) else str(col)
        label = label or "column"
        unique, n = label, 1
        while unique in seen:
            n += 1
            unique = f"{label}_{n}"
        seen.add(unique)
        names.append(unique)
    return frame.set_axis(names, axis=1)


def _write_arrow(frame: Any, path: Path) -> None:
    """Write ``frame`` (tidied: unique string column names) for the host, each column stored the way
    the dataset store would store it (``bot.datasets.columns``); a column that cannot be stored at
    all is left out and named in the cell's output."""
    import pyarrow as pa
    import pyarrow.ipc

    from bot.datasets.columns import choose

    arrays, names, dropped = [], [], []
    for i, name in enumerate(frame.columns):
        _, array = choose(frame.iloc[:, i])
        if array is None:
            dropped.append(str(name))
        else:
            arrays.append(array)
            names.append(str(name))
    if dropped:
        print(f"(left out of the dataset, could not be stored even as text: {', '.join(dropped)})", file=sys.stderr)
    table = pa.table(arrays, names=names)
    tmp = path.with_suffix(".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pyarrow.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=8192)
    os.replace(tmp, path)


# --- figures ---------------------------------------------------------------------------------


def next_free(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem-<n>suffix`` for the smallest n not taken (the host uses the same scheme)."""
    folder.mkdir(parents=True, exist_ok=True)
    taken = {p.name for p in folder.iterdir()}
    pattern = re.compile(rf"{re.escape(stem)}-(\d+){re.escape(suffix)}$")
    numbers = [int(m.group(1)) for name in taken if (m := pattern.match(name))]
    return folder / f"{stem}-{max(numbers, default=0) + 1}{suffix}"


def save_open_figures() -> list[Path]:
    """Save every open pyplot figure with something drawn as a PNG, close it and announce it."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    saved: list[Path] = []
    for number in plt.get_fignums():
        fig = plt.figure(number)
        if fig.axes:
            path = next_free(workspace() / "figures", "figure", ".png")
            fig.savefig(path, dpi=100, bbox_inches="tight")
            saved.append(path)
            _publish({FIGURE_MIME: {"path": str(path)}, "text/plain": f"[figure {path.name}]"})
        plt.close(fig)
    return saved


def flush_figures(*_: Any) -> None:
    """``post_run_cell`` hook: show figures the cell left open, as inline backends do."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None or plt.get_backend() != MPL_BACKEND:
        return  # the user switched backend (e.g. %matplotlib inline): that backend shows them
    try:
        save_open_figures()
    except Exception as exc:
        print(f"(could not save a figure: {type(exc).__name__}: {exc})", file=sys.stderr)


def _publish(data: dict[str, Any]) -> None:
    from IPython.display import publish_display_data

    publish_display_data(data)


# --- shell -----------------------------------------------------------------------------------


def run_shell(command: str) -> None:
    """Run ``command`` in a shell in the kernel's cwd, streaming its output, then send its status."""
    proc = subprocess.Popen(
        command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
        bufsize=1,
    )
    assert proc.stdout is not None and proc.stderr is not None
    pump = threading.Thread(target=_pump, args=(proc.stderr, sys.stderr), daemon=True)
    pump.start()
    try:
        for line in proc.stdout:
            sys.stdout.write(line)
        code = proc.wait()
    except KeyboardInterrupt:
        proc.kill()
        proc.wait()
        raise
    pump.join(timeout=2)
    _publish({EXIT_MIME: {"returncode": code}, "text/plain": f"exit status {code}"})


def _pump(source: IO[str], sink: IO[str]) -> None:
    for line in source:
        sink.write(line)
