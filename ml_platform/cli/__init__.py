"""`ml-platform` command line. Each module registers its commands on the shared Typer app."""

# Importing a command module registers its commands; keep heavy imports inside the commands.
import ml_platform.cli.replay  # noqa: F401, E402
import ml_platform.cli.rollout  # noqa: F401
from ml_platform.cli import contracts, examples, labels, models, training  # noqa: E402, F401
from ml_platform.cli.app import app, main

__all__ = ["app", "main"]
