"""Dagster wiring: resources, assets and checks, the schedule. Nothing here computes data."""
