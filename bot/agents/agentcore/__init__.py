"""The AgentCore Code Interpreter as a ``CodeExecutor``: a sandboxed session per conversation."""
