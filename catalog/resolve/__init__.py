"""Which deployment runs a model: policies, pins, settings, run entries and their files."""
