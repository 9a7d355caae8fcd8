"""bench: a distributed benchmark harness for computer-vision architectures."""

__version__ = "0.1.0"
