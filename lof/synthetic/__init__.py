"""A synthetic university (LEB2 database and Amplitude exports) for the demo, tests and benchmarks.

Owns the generator (``university``) and its teachers' actions with a known effect
(``interventions``). May import ``lof.core``, ``lof.sources`` (the LEB2 schema it fills) and
``lof.interventions`` (the action record); nothing above.
"""
