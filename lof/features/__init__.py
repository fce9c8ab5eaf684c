"""What lof knows of a student on a day: the 13 features, the early-warning signals, drift.

Owns the feature definitions of docs/domain.md §2.3 (``definitions``: daily increments,
cumulative state, within-class scaling), the early-warning signals (``signals``), the daily
state update shared by scoring and the stores (``state``) and feature drift against what the
Production model learnt from (``drift``). Pure functions on frames: no I/O. May import
``lof.core`` only.
"""
