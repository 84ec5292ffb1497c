"""bot/ imports no platform SDK, except each agent backend module importing its own."""

import ast
from pathlib import Path

SDKS = ("slack_bolt", "slack_sdk", "botbuilder", "botframework", "jupyter_client", "boto3", "botocore", "adapters")
ALLOWED = {"agents": ("jupyter_client", "boto3", "botocore"), "cli.py": ("adapters",)}


def test_bot_imports_no_platform_sdk() -> None:
    for path in Path(__file__).parents[1].joinpath("bot").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        allowed = next((v for k, v in ALLOWED.items() if k in path.parts), ())
        bad = [n for n in names if n.split(".")[0] in SDKS and n.split(".")[0] not in allowed]
        assert not bad, f"{path} imports {bad}"
