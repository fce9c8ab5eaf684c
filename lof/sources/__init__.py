"""Adapters to the systems lof reads: LEB2 (MySQL) and Amplitude."""
