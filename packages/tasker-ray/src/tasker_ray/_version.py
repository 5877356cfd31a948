"""The package's version: its one source, read by the build for the package's metadata."""

__version__ = "0.1.0"
