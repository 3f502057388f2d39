"""The `flowdeck` command (entry point `flowdeck.cli:main`); cli/app.py lists its modules."""

from flowdeck.cli.app import app, main

__all__ = ["app", "main"]
