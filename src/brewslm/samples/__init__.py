"""Sample data shipped with BrewSLM (the demo and the README tour use tickets.jsonl)."""
