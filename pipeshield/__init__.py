"""pipeshield: the security layer for existing Airflow 3 and MLflow 3 ML pipelines.

The public API is what the README shows. The core never imports Airflow; the
adapters live in ``pipeshield.operators``, ``pipeshield.hooks`` and
``pipeshield.plugins``.
"""

from pipeshield.errors import PipeshieldError

__version__ = "0.1.0"

__all__ = ["PipeshieldError", "__version__"]
