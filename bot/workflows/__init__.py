"""Workflows: steps that each run as one agent turn in a conversation of their own, passing datasets
through the dataset store (``spec`` reads the files, ``runner`` runs them, ``record`` is what is kept)."""
