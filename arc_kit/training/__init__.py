"""Fine-tuning on ARC tasks: config, dataset with answer-only labels, the TRL trainer, checkpoints and export.

Public entry points (heavy imports happen inside them)::

    from arc_kit.training import load_config, run_training, export_model
    result = run_training(load_config("tiny-cpu.toml", ["train.output_dir=runs/x"]))
    merged_dir = export_model(result.output_dir, "export/x")
"""

from arc_kit.config.schema import SettingsError
from arc_kit.config.training import TrainConfig, load_config, resolve_config_path
from arc_kit.training.export import export_model
from arc_kit.training.trainer import TrainResult, run_training

__all__ = ["SettingsError", "TrainConfig", "TrainResult", "export_model", "load_config", "resolve_config_path",
           "run_training"]
