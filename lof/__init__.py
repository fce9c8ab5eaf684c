"""lof — the learning-outcome forecaster.

Packages by concern, lowest first (docs/architecture.md): ``core``; ``features`` and the
feedback records (``feedback``); ``sources``, ``stores`` and ``synthetic``; ``model``, the
former-model adapter (``legacy``) and ``governance``; ``registry`` and the daily computation
(``scoring``); ``training``; ``api``; then ``flows`` and the commands (``cli``, ``demo``,
``console``, ``automations``). A module imports its own layer or lower ones only
(tests/test_architecture.py).
"""

__version__ = "0.1.0"
