"""The browser view of a conversation: its workspace page and dataset grid, served by ``datathread serve``."""
