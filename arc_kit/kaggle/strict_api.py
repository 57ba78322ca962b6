"""The ``kaggle`` client's ``KaggleApi`` with one stricter upload step (``StrictKaggleApi``).

Imported only by ``client._api_class``, when a command talks to Kaggle: importing ``kaggle.api`` runs the
package's ``__init__``, which authenticates (and may print its help) at import time.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from arc_kit.kaggle.errors import UploadFailed

with contextlib.redirect_stdout(io.StringIO()):  # the package's import-time authenticate may print help
    from kaggle.api.kaggle_api_extended import KaggleApi


class StrictKaggleApi(KaggleApi):
    """A failed file upload stops before the create call, so nothing half-made is published, and says so in the
    kit's words. Client releases differ: up to 2.2.4 ``_upload_file`` returns None (and the client would then
    create the dataset without that file); from 2.2.5 it raises ``ValueError("Upload unsuccessful: ...")`` itself."""

    def _upload_file(self, file_name: str, full_path: str, *args: Any, **kwargs: Any) -> Any:
        try:
            result = super()._upload_file(file_name, full_path, *args, **kwargs)
        except ValueError as e:
            if not str(e).startswith("Upload unsuccessful"):
                raise
            result = None
        if result is None:
            raise UploadFailed(
                f"upload of {file_name} failed; stopped before creating anything on Kaggle "
                f"(files sent before it were not attached to any dataset or model)"
            )
        return result
