"""Layering rules, read from the import statements themselves.

- ``bot/`` imports no platform SDK, except each agent backend package importing its own.
- ``renderers/`` imports only ``bot`` data types, never an adapter or an SDK.
- No import cycles among the project's modules (imports under ``TYPE_CHECKING`` excepted).
- Adapters and benchmarks use the engine only through its public methods and properties.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGES = ("bot", "adapters", "renderers")
SDKS = ("slack_bolt", "slack_sdk", "botbuilder", "botframework", "jupyter_client", "boto3", "botocore", "urllib3",
        "jupyter_server", "websocket", "adapters")
AWS, KERNEL = ("boto3", "botocore", "urllib3"), ("jupyter_client",)
GATEWAY = ("jupyter_client", "jupyter_server", "websocket")
#: Where in bot/ an SDK may be imported: a backend package its own SDK, the CLI (the composition root) adapters,
#: the AWS mode's package boto3 (its stores in bot/storage and bot/datasets take clients, never import it).
ALLOWED = {"bot/agents/aws.py": AWS, "bot/agents/bedrock_agents": AWS, "bot/agents/converse": AWS,
           "bot/agents/agentcore": AWS, "bot/agents/kernel": KERNEL, "bot/agents/gateway": GATEWAY,
           "bot/cli.py": ("adapters",), "bot/aws": AWS}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


@functools.cache
def _tree(path: Path) -> ast.Module:
    """``path`` parsed once for all the rules here (the same tree is read by several)."""
    return ast.parse(path.read_text())


@functools.cache
def _import_table(path: Path) -> tuple[tuple[str, bool], ...]:
    """Every absolute module name ``path`` imports, anywhere in it, each with whether it is imported
    only under ``if TYPE_CHECKING:`` (one pass over the tree, shared by all the rules here)."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((a.name, typing_only) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.append((node.module, typing_only))
                found.extend((f"{node.module}.{a.name}", typing_only) for a in node.names)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, typing_only)
        elif not isinstance(node, ast.expr):  # imports are statements: expressions hold none
            for child in ast.iter_child_nodes(node):
                visit(child, typing_only)

    visit(_tree(path), False)
    return tuple(found)


def _imports(path: Path, *, runtime_only: bool) -> list[str]:
    """Absolute module names ``path`` imports (at run time only, when asked: not under TYPE_CHECKING)."""
    return [name for name, typing_only in _import_table(path) if not (runtime_only and typing_only)]


def test_bot_imports_no_platform_sdk() -> None:
    for module, path in _modules().items():
        if not module.startswith("bot"):
            continue
        rel = path.relative_to(ROOT).as_posix()
        allowed = next((v for k, v in ALLOWED.items() if rel == k or rel.startswith(k + "/")), ())
        bad = [n for n in _imports(path, runtime_only=False) if n.split(".")[0] in SDKS
               and n.split(".")[0] not in allowed]
        assert not bad, f"{rel} imports {bad}"


def test_renderers_import_only_core_types() -> None:
    for module, path in _modules().items():
        if module.startswith("renderers"):
            bad = [n for n in _imports(path, runtime_only=False) if n.split(".")[0] in SDKS]
            assert not bad, f"{path} imports {bad}"


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {m: {n for n in _imports(p, runtime_only=True) if n in modules and n != m} for m, p in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target):], target] if target in path else [module, target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_nothing_outside_tests_imports_tests() -> None:
    """Benchmarks and the product stand alone: shared fakes live in the packages, not in ``tests/``."""
    paths = [p for package in (*PACKAGES, "benchmarks") for p in (ROOT / package).rglob("*.py")]
    for path in paths:
        bad = [n for n in _imports(path, runtime_only=False) if n.split(".")[0] == "tests"]
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def _engine_public_members() -> set[str]:
    """The methods and properties ``Engine`` defines without a leading underscore."""
    tree = ast.parse((ROOT / "bot" / "engine.py").read_text())
    [engine] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Engine"]
    return {n.name for n in engine.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and not n.name.startswith("_")}


def _engine_attributes(source: str | ast.Module) -> list[tuple[int, str]]:
    """``(line, attribute)`` for every ``engine.X`` / ``something.engine.X`` in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source) if isinstance(source, str) else source):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if (isinstance(owner, ast.Name) and owner.id == "engine") or \
                (isinstance(owner, ast.Attribute) and owner.attr == "engine"):
            found.append((node.lineno, node.attr))
    return sorted(found)


def test_the_engine_check_sees_state_actions_agent_datasets_and_private_names() -> None:
    public = _engine_public_members()
    assert {"submit", "act", "seal", "cancel", "claim_event", "idle", "accepting"} <= public
    source = "engine.state\nself.engine.actions.tokens\nbot.engine.agent.name\nengine.datasets\nengine._turns\n"
    assert [attr for _, attr in _engine_attributes(source) if attr not in public] == [
        "state", "actions", "agent", "datasets", "_turns"]


def test_adapters_and_benchmarks_use_only_the_engines_public_methods() -> None:
    public = _engine_public_members()
    for package in ("adapters", "benchmarks"):
        for path in (ROOT / package).rglob("*.py"):
            bad = [f"line {line}: engine.{attr}" for line, attr in _engine_attributes(_tree(path))
                   if attr not in public]
            assert not bad, f"{path.relative_to(ROOT)} reaches into the engine: {bad}"
