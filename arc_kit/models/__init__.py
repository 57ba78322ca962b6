"""Weights in and out: loading a model (Unsloth or transformers), the tiny model and the ARC tokenizer,
real vocabularies offline, the manifest written beside exported weights."""
