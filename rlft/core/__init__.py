"""What every part of rlft stands on: errors, recipes, argument groups, runtime, models, data, tasks, manifests, run directories.

Imports nothing from the rest of rlft (only :mod:`rewards`).
"""
