"""Features: the declared SQL and dbt feature tables, the training set, and the Feast feature
store (objects generated from pipeline specs, versioned feature services, guarded online
loads). ``definitions`` is cheap to import; only ``feast_objects``, ``online`` and ``skew``
import Feast (about 3.5 s), inside their functions. No Dagster here."""
