"""Commands added by the contracts work (see ml_platform/cli/app.py for the shared app)."""
