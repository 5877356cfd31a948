"""The package's version, kept in step with its metadata."""

__version__ = "0.1.0"
