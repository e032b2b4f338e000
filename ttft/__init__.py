"""ttft: a workbench for ARC test-time fine-tuning research."""

__version__ = "0.1.0"
