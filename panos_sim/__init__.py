"""Simulate a fleet of Palo Alto Networks firewalls speaking the PAN-OS XML API over HTTPS.

Run ``python -m panos_sim --devices N --inventory PATH``; see docs/simulator.md for the contract.
This package imports nothing from the PANfm product so it can stand in for real firewalls.
"""

__all__: list[str] = []
