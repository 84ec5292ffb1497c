"""The embedded default: a local Jupyter kernel per conversation runs the code people send."""
