"""The code a gateway kernel needs from datathread, sent as source through an execute request.

A local kernel imports ``bot.agents.kernel.startup`` from the bot's own Python. A gateway kernel runs
wherever the gateway puts it (a pod, a container) with whatever image the operator chose: it has
ipykernel (and pandas / pyarrow / matplotlib for tables and charts), not datathread. So the few
modules the kernel runs are shipped as source and served by an import hook placed first on
``sys.meta_path``: the same startup code as a local kernel, and ``kernel_side`` to move files. The
hook wins over any other ``bot`` package the kernel's Python may have, so the kernel always runs the
code of the bot that talks to it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

#: The modules a kernel imports, all standard library at import (pandas / pyarrow only when used).
SHIPPED = ("bot.agents.kernel.startup", "bot.agents.kernel.mpl_backend", "bot.datasets.columns",
           "bot.agents.gateway.kernel_side")

_HOOK = '''
import importlib.abc, importlib.util, sys

class _DatathreadModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the shipped modules and their parent packages; nothing else."""

    def find_spec(self, name, path=None, target=None):
        if name in SOURCES:
            return importlib.util.spec_from_loader(name, self, is_package=False)
        if any(s.startswith(name + ".") for s in SOURCES):
            return importlib.util.spec_from_loader(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        source = SOURCES.get(module.__name__)
        if source is None:
            module.__path__ = []
            return
        exec(compile(source, "<datathread " + module.__name__ + ">", "exec"), module.__dict__)

sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "_DatathreadModules"]
sys.meta_path.insert(0, _DatathreadModules())
for name in [m for m in sys.modules if m == "bot" or m.startswith("bot.")]:
    del sys.modules[name]
'''


def _source(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(module)
    return Path(spec.origin).read_text(encoding="utf-8")


def bootstrap_code(folder: str, memory_bytes: int) -> str:
    """One silent cell: install the import hook, enter ``folder`` (relative to the kernel's cwd, or
    absolute) and run the same startup as a local kernel there. Its user expression ``root`` is the
    folder's absolute path in the kernel."""
    sources = {name: _source(name) for name in SHIPPED}
    return (
        f"exec({_HOOK!r}, {{'SOURCES': {sources!r}, '__name__': 'datathread_bootstrap'}})\n"
        "__import__('bot.agents.kernel.startup', fromlist=['install']).install("
        f"__import__('bot.agents.gateway.kernel_side', fromlist=['enter']).enter({folder!r}), {int(memory_bytes)})"
    )


#: A user expression: the conversation's folder in a kernel that was bootstrapped (else an error).
ROOT_EXPRESSION = "__import__('bot.agents.gateway.kernel_side', fromlist=['root']).root()"


def call(function: str, *args: object) -> str:
    """An expression calling ``kernel_side.<function>(*args)``; ``args`` are Python literals."""
    rendered = ", ".join(repr(a) for a in args)
    return f"__import__('bot.agents.gateway.kernel_side', fromlist=['_']).{function}({rendered})"
