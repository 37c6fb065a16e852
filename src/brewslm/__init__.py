"""BrewSLM: fine-tune small language models through eleven explicit, audited stages."""

__version__ = "0.1.0"
