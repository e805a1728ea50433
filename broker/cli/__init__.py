"""The ``accord`` command line.

Each command group lives in its own private module exposing ``register(app)``; heavy
imports (faust, aiokafka, cryptography) happen inside commands so ``accord --help`` is fast.
``main`` turns every deliberate error and every usage mistake into one line on stderr and a
non-zero exit: a user never sees a traceback for their own mistake.
"""

from broker.cli._app import build_app, main

__all__ = ["build_app", "main"]
