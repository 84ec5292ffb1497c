"""bot/ imports no platform SDK, except each agent backend module importing its own."""

import ast
from pathlib import Path

SDKS = ("slack_bolt", "slack_sdk", "botbuilder", "botframework", "jupyter_client", "boto3", "botocore", "urllib3",
        "adapters")
AWS, KERNEL = ("boto3", "botocore", "urllib3"), ("jupyter_client",)
ALLOWED = {"aws": AWS, "bedrock_agent": AWS, "converse": AWS, "agentcore": AWS, "kernel_": KERNEL,
           "local_kernel": KERNEL, "cli.py": ("adapters",)}


def test_bot_imports_no_platform_sdk() -> None:
    for path in Path(__file__).parents[1].joinpath("bot").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0]
        allowed = next((v for k, v in ALLOWED.items() if (path.name.startswith(k) and "agents" in path.parts)
                        or path.name == k), ())
        bad = [n for n in names if n.split(".")[0] in SDKS and n.split(".")[0] not in allowed]
        assert not bad, f"{path} imports {bad}"
