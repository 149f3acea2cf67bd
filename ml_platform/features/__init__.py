"""Features: the declared SQL and dbt feature tables, the Feast feature store (objects generated
from pipeline specs, versioned feature services, guarded online loads) and the training set
retrieved through it. ``definitions`` is cheap to import; Feast (about 3.5 s) is imported by
``feast_objects`` and, inside their functions, by ``offline``, ``online``, ``skew`` and
``tables.build_training_set``. No Dagster here."""
