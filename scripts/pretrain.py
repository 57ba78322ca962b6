"""Train with the recipe: the same code as `arc-kit train`.

    python scripts/pretrain.py --config tiny-cpu --set train.output_dir=runs/x [--resume]
    python scripts/pretrain.py --config arc_kit/configs/gpu-qwen.toml --set data.augmentations=16
"""

from __future__ import annotations

import sys

from arc_kit.cli.flags import Parser
from arc_kit.cli.main import notices_on_stderr
from arc_kit.cli.train import add_train_arguments, train_from_args


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description="Fine-tune a model on ARC tasks (see arc_kit/config/training.py)")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    with notices_on_stderr():
        return train_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
