"""Hooks (installed as ``pipeshield.hooks``): Vault and MLflow clients for the operators and plugins."""
