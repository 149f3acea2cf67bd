"""Commands added by the training work (see ml_platform/cli/app.py for the shared app)."""
