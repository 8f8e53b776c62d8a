"""WormSpace: write-once registers, layered models, a model checker, proofs and an implementation.

The installed package ``wormspace`` gathers the project's folders: ``wormspace.checker``
(the model checker), ``wormspace.spec`` (atomic interfaces), ``wormspace.model`` (protocol
modules), ``wormspace.impl`` (the networked implementation) and
``wormspace.refinement_tests``. This package itself holds the command line (``main``) and the
catalog of registered models (``catalog``).
"""

__version__ = "0.1.0"
