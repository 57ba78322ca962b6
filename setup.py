"""What pyproject.toml cannot say: the kernel entries ship inside the package.

They live at the top of the repository, in ``submission/``, where a reader looks for a kernel's entry; the wheel
(and an editable install) carries that folder as ``arc_kit.kernel_entries``, so a pip-installed kit builds
kernels too (``arc_kit.kaggle.kernel_build.kernel_entry``). Every other package is found as before.
"""

from setuptools import find_namespace_packages, setup

setup(packages=[*find_namespace_packages(include=["arc_kit*"]), "arc_kit.kernel_entries"],
      package_dir={"arc_kit.kernel_entries": "submission"})
