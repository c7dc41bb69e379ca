"""Helpers shared by CLI sub-commands."""

from __future__ import annotations

import argparse

from pipeshield.config import Settings
from pipeshield.keys import KeyProvider, open_key_provider


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.load(config_file=getattr(args, "config", None))


def provider_from(args: argparse.Namespace) -> KeyProvider:
    return open_key_provider(settings_from(args))
