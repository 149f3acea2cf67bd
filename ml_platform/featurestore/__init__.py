"""The feature store: Feast objects generated from pipeline specs, versioned feature services,
guarded online materialization. ``definitions`` is framework-free and cheap to import; only
``feast_objects``, ``online`` and ``skew`` import Feast (about 3.5 s), inside their functions."""
