"""arc-kit: fine-tune a small LLM on ARC tasks and submit it to the ARC Prize Kaggle competition offline."""

__version__ = "0.1.0"

COMPETITION_SLUG = "arc-prize-2026-arc-agi-2"
"""The default competition; every command takes --competition to point elsewhere (e.g. arc-prize-2025)."""
