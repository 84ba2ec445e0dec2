"""Real datasets: downloads, layout checks and preprocessors to the processed format (hcmoco.processed.shards)."""
