"""Readers: JSONL (plain, .gz, .zst), Parquet, WARC and WET into the one document schema."""
