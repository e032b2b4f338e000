"""The engine: models and LoRA, sample streams, training, shards, generation, prediction, experiments, commands."""
