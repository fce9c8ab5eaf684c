"""The API's routers, one module per concern of docs/contracts.md §3.5.

``ops`` (liveness, readiness), ``predictions`` (what the LEB2 backend reads), ``privacy``
(opt-out through the API), ``webhooks`` (uploads and alias changes as Prefect events),
``pages`` (the class page teachers open), ``links`` (signed links to it) and ``feedback``
(teachers' feedback on warnings). Routes may import ``lof.api``'s shared modules and every
lower package; nothing in ``lof.api`` outside ``factory`` imports a route.
"""
