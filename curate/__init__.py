"""curate: the pipeline core (document schema, readers, stages, executors, dedup, manifests, CLI)."""

__version__ = "0.1.0"
