"""Prefect flows: wiring only (steps, retries, mapping, task runners).

Feature logic lives in stag_features; a flow here reads like a list of steps.
"""
