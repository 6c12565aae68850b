"""Public names of a package loaded on first use (PEP 562).

The standard library offers the hook (a module's ``__getattr__``) but no
helper that builds it; the top-level package and :mod:`sk_mnist.inspection`
both need one, so it is written once here.
"""

import importlib
import sys


def lazy_attributes(package, public):
    """``__getattr__`` and ``__dir__`` for ``package``, loading ``public`` on first use.

    ``public`` maps each name to the submodule (relative to ``package``) that
    defines it. A loaded name is kept in the package's namespace, so the hook
    runs once per name.
    """

    def __getattr__(name):
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(public[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted([*vars(sys.modules[package]), *public])

    return __getattr__, __dir__
