"""The library's version, in a module of its own so that the runner can announce it without
importing the package's ``__init__``."""

__version__ = "0.1.0"
