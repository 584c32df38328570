"""Media, ingest sources and downloads over REST."""
