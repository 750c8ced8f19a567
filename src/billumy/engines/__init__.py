"""Engines run models: embedded llama.cpp today, upstream servers later."""
