"""The ground every other package stands on: settings, errors, local days, retries, progress.

Owns the one settings class (``config``), the one-line errors (``errors``), local days and
cutoffs (``calendar``), the one retry policy of the adapters (``retry``), progress bars
(``progress``), the garbage-collector pause of bulk work (``collector``), the bounded input
values shared by the API, the class page and feedback (``inputs``), signed class-page links
(``links``) and the templates' environment (``templates``). May import only the standard
library and third-party packages, never another lof package.
"""
