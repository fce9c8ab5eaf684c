"""A synthetic university (LEB2 database and Amplitude exports) for the demo, tests and benchmarks.

Owns the generator (``university``). May import ``lof.core`` and ``lof.sources`` (the LEB2
schema it fills); nothing above.
"""
