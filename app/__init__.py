"""Walkthrough: classroom observation, offline sync and observer calibration."""
