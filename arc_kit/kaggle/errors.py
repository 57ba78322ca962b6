"""The errors of talking to Kaggle, below the client and its stricter ``KaggleApi`` (``strict_api``), which both
raise them."""

from __future__ import annotations

from arc_kit.errors import ArcKitError


class KaggleError(ArcKitError, RuntimeError):
    """A Kaggle call failed; the message says what and what to do."""


class CredentialsMissing(KaggleError):
    """No credential the client could use was found."""


class UploadFailed(KaggleError):
    """A file did not reach Kaggle; raised before the create/version call, so nothing was published."""
