"""Results where researchers already look: a results database as Parquet/CSV tables
(:mod:`rankrobust.export.tables`) or as MLflow runs (:mod:`rankrobust.export.mlflow`, the
``rankrobust[mlflow]`` extra)."""
