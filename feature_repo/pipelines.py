"""Feast objects for every declared pipeline, generated from its spec (feast apply/plan read this).

Each pipeline contributes its entity, a feature view ``<pipeline>_fv`` over its offline feature
table in the platform home, and its current feature service ``<pipeline>_v<N>``.
"""

from ml_platform.features.repo import repo_objects

for _obj in repo_objects():
    globals()[f"{type(_obj).__name__}_{_obj.name}"] = _obj
