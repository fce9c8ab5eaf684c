"""Student data as personal data: erasure, opt-out, retention, pseudonyms, the access log read.

Owns what ``lof forget``, ``lof opt-out``/``opt-in``, ``lof purge`` and the daily retention do
(``erasure``), the opt-out list applied to ids (``optout``), keyed pseudonyms of student ids
(``pseudonyms``), the officer's view of the access log (``audit``) and the students' group
attributes, read for evaluation only (``groups``). May import ``lof.core``,
``lof.features``, ``lof.sources`` and ``lof.stores``; never model, training, registry, API or
flows.
"""
