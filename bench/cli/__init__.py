"""Command-line interface; sub-apps are mounted by ``bench.cli.main``."""
