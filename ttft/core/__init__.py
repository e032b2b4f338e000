"""Core: ARC types and loaders, augmentations, text encodings and the tokenizer, metrics, voting (pure, no jobs)."""
