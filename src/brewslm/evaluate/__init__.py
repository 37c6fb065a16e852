"""Stage 09's building blocks: eval packs, metrics, generation, gates and the report."""
