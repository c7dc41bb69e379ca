"""Entry points (installed as ``pipeshield.plugins``): Airflow plugin, listener, cluster policy,
MLflow registry-store and artifact plugins, and the Airflow provider info."""
