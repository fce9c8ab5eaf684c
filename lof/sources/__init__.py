"""Adapters to the systems lof reads: LEB2 (MySQL) and Amplitude.

Owns the LEB2 adapter (``leb2``: the tables of docs/domain.md §2.1 through SQLAlchemy Core), the
Amplitude adapter (``amplitude``: one local day of page views, docs/domain.md §2.2) and the
checksum cache of assessed records (``assessed_cache``). May import ``lof.core`` and
``lof.features`` (the frames it returns); never stores, model, training or anything above.
"""
