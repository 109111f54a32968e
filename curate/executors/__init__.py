"""Executors run a plan's shard tasks: `local` (embedded default, a process pool) and `ray` (Ray Data)."""
