"""The kernel entries, installed with arc-kit as ``arc_kit.kernel_entries`` (setup.py) so that an installed kit
builds kernels too; ``arc_kit.kaggle.kernel_build.kernel_entry(kind)`` finds one. Nothing imports them: each is
copied into a kernel folder by ``arc-kit kernel build``."""
