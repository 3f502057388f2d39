from flowdeck.cli.main import main

__all__ = ["main"]
