"""Reliability scenarios of issue 7: real clock, real web, the simulator, faults and figures.

Run one from the checkout: `python -m reliability.fault_fleet` (see docs/reliability.md).
"""
