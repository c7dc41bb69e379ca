"""Airflow operators (installed as ``pipeshield.operators``): thin adapters over the pipeshield core."""
