"""Package names that import their module on first use: a command checks its input
before TensorFlow (which most modules import) is paid for."""

import importlib


def lazy_getattr(package, where):
    """A module `__getattr__` for `package` that imports `package.<where[name]>` on the
    first access of `name`."""

    def __getattr__(name):
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
