"""Billumy: an LLM data-insights gateway that speaks the Ollama API."""

__version__ = "0.1.0"
