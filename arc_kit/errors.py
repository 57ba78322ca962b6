"""The kit's own errors: bad input a user can fix (a file, a setting, a folder), said in one line.

Every error the kit raises for such input derives from ``ArcKitError``; the ``arc-kit`` command prints those as
``error: <message>`` and exits 2. Anything else is a bug (in the kit or a library) and keeps its traceback, so a
failure after hours of training is never reduced to one line without a stack.
"""

from __future__ import annotations


class ArcKitError(Exception):
    """Bad input, named in the message (the file, task, field or folder) so it is fixed in one look."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (Kaggle stopping the session, ``kill``), raised where the run can take it: it ends as after
    Ctrl-C, with the submission valid and the reports written, then the process exits 143."""
