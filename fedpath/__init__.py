"""fedpath: federated shopping-path prediction.

The ``fedpath`` package itself is the *core* every part shares (event schema, loaders,
sessions, models, metrics). It never imports Flower: the federation lives in the
``fedpath.server``, ``fedpath.clients``, ``fedpath.strategies`` and ``fedpath.privacy``
subpackages, which sit in their own top-level folders of the repository.
"""

__version__ = "0.1.0"
