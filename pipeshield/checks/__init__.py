"""Data checks that run before training (poisoning detection; validation lives beside it)."""
