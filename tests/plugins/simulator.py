"""Pytest plugin: the Align simulator as a real process (filled in with the simulator)."""
