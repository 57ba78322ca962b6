"""The LoRA adapter's shape, one type for pre-training's adapter and test-time training's."""

from __future__ import annotations

from dataclasses import dataclass

from arc_kit.config.schema import Settings, setting

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraSettings(Settings):
    """A LoRA on every listed projection the model has; the defaults are pre-training's recipe (rank 64, rsLoRA)
    and test-time training states its own (``TTTSettings.lora``)."""

    r: int = setting(64, help="LoRA rank", ge=1)
    alpha: int = setting(64, help="LoRA alpha (rsLoRA scales the update by alpha / sqrt(r))", gt=0)
    dropout: float = setting(0.0, help="LoRA dropout", ge=0.0, lt=1.0)
    use_rslora: bool = setting(True, help="rsLoRA: scale by alpha/sqrt(r) rather than alpha/r, so a large rank "
                                          "still learns")
    target_modules: list[str] = setting(help="projection names that get a LoRA (those present in the model)",
                                        factory=lambda: list(PROJECTIONS))
    train_embeddings: bool = setting(False, help="also train embed_tokens and lm_head as full matrices (peft "
                                                 "modules_to_save)")

    def cross_check(self, where: str) -> None:
        from arc_kit.config.schema import SettingsError, field_path

        if not self.target_modules:
            raise SettingsError(f"{field_path(where, 'target_modules')} must name at least one projection")
