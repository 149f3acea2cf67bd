"""Commands added by the models work (see ml_platform/cli/app.py for the shared app)."""
