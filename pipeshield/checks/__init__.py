"""Data checks run before training: Great Expectations validation, poisoning detection and the gate."""
