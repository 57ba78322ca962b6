"""Every call of the ``kaggle`` client lives here; the client itself is imported lazily (``strict_api``).

Why lazily: ``import kaggle`` authenticates at import time (and may call the network for a token check), so
the rest of the kit must work without credentials. Why a wrapper at all: the client prints and returns
error objects instead of raising, treats any HTTP error on the status call as "slug is free", and silently
drops a file whose upload failed before creating the dataset anyway. Here each of those becomes a
``KaggleError`` with a message that says what happened and what (if anything) was already published.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arc_kit.core.files import made_folder
from arc_kit.kaggle.errors import CredentialsMissing, KaggleError
from arc_kit.kaggle.upload import credential_sources, split_dataset_id

HOW_TO_SET_CREDENTIALS = (
    "Set one of: KAGGLE_API_TOKEN (an access token from kaggle.com/settings, or a path to a file holding it); "
    "KAGGLE_USERNAME and KAGGLE_KEY; or a kaggle.json file ({\"username\": ..., \"key\": ...}, chmod 600) in "
    "$KAGGLE_CONFIG_DIR, ~/.kaggle or ~/.config/kaggle."
)

TERMINAL_KERNEL_STATES = frozenset({"COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED"})


@dataclass(frozen=True)
class PublishResult:
    ref: str
    action: str  # "created" or "new version"
    url: str | None = None
    version: int | None = None


@dataclass(frozen=True)
class PushResult:
    ref: str
    version: int | None
    url: str | None


@dataclass(frozen=True)
class KernelStatus:
    state: str  # QUEUED, RUNNING, COMPLETE, ERROR, ...
    failure_message: str | None = None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_KERNEL_STATES


# --------------------------------------------------------------------------------------------------------------
# The client, built on demand


def check_credentials(environ: dict[str, str] | None = None) -> None:
    """Raise ``CredentialsMissing`` unless the client will find a credential; never reads values out loud."""
    if not credential_sources(environ):
        raise CredentialsMissing(f"No Kaggle credentials found. {HOW_TO_SET_CREDENTIALS}")


def _api_class() -> type:
    """The client's ``KaggleApi`` with one stricter upload step (``strict_api.StrictKaggleApi``); importing it
    imports ``kaggle``, which authenticates at import time, so this runs only when a command talks to Kaggle."""
    try:
        from arc_kit.kaggle.strict_api import StrictKaggleApi
    except ModuleNotFoundError as e:
        raise KaggleError(f"the kaggle client is not installed ({e.name}): pip install 'arc-kit[kaggle]'") from None
    return StrictKaggleApi


def client() -> Any:
    """An authenticated ``KaggleApi`` (the client's own credential lookup), or ``CredentialsMissing``."""
    check_credentials()
    api = _api_class()()
    # VERBOSE=1 makes the client print every request with its headers (the Authorization header included).
    api.args = [a for a in api.args if a not in ("--verbose", "-v")]
    try:
        with _kaggle_call("authenticating"), contextlib.redirect_stdout(io.StringIO()):
            api.authenticate()
    except SystemExit:  # the client calls exit(1) after printing its help
        raise CredentialsMissing(f"Kaggle rejected the configured credentials. {HOW_TO_SET_CREDENTIALS}") from None
    return api


def username(api: Any) -> str:
    return str(api.config_values.get("username") or "")


@contextlib.contextmanager
def _kaggle_call(what: str) -> Iterator[None]:
    """Turn the client's exceptions into one clear ``KaggleError`` naming ``what`` was being done."""
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import HTTPError

    try:
        yield
    except KaggleError:
        raise
    except HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        detail = _server_message(exc)
        if status in (401, 403):
            raise KaggleError(
                f"{what}: Kaggle refused the request (HTTP {status}{': ' + detail if detail else ''}). Check that "
                f"the credentials are valid and that you own the resource. {HOW_TO_SET_CREDENTIALS}"
            ) from None
        if status == 404:
            raise KaggleError(f"{what}: not found on Kaggle (HTTP 404{': ' + detail if detail else ''})") from None
        raise KaggleError(f"{what}: Kaggle answered HTTP {status}{': ' + detail if detail else ''}") from None
    except RequestsConnectionError as exc:
        raise KaggleError(f"{what}: could not reach Kaggle ({type(exc).__name__})") from None
    except ValueError as exc:  # the client's own validation of metadata and ids
        message = str(exc)
        if message.startswith("Cannot access kernel"):
            message = "Kaggle refused access (HTTP 401/403): check the kernel id and your credentials"
        raise KaggleError(f"{what}: {message}") from None


def _server_message(exc: Any) -> str:
    try:
        body = exc.response.json()
        return str(body.get("message") or body.get("error") or "")
    except Exception:  # noqa: BLE001 - a non-JSON body has no message to add
        return ""


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


# --------------------------------------------------------------------------------------------------------------
# Datasets and models


def dataset_exists(api: Any, ref: str) -> bool:
    """Ask Kaggle (the status call) whether ``owner/slug`` exists; 404 means free, 401/403 is an error."""
    with contextlib.redirect_stdout(io.StringIO()):
        return _exists(lambda: api.dataset_status(ref), f"checking dataset {ref}")


def publish_dataset(folder: Path, ref: str, notes: str, public: bool = False, dir_mode: str = "zip",
                    api: Any = None) -> PublishResult:
    """Create ``ref`` from ``folder`` (its dataset-metadata.json), or add a version when it exists."""
    api = api or client()
    _check_owner(api, ref, "dataset")
    exists = dataset_exists(api, ref)
    what = f"{'versioning' if exists else 'creating'} dataset {ref}"
    with _kaggle_call(what), contextlib.redirect_stdout(io.StringIO()):
        if exists:
            result = api.dataset_create_version(str(folder), notes, quiet=True, dir_mode=dir_mode)
        else:
            result = api.dataset_create_new(str(folder), public=public, quiet=True, dir_mode=dir_mode)
    error = getattr(result, "error", None)
    if result is None or error or (getattr(result, "status", "") or "ok").lower() not in ("ok", ""):
        raise KaggleError(f"{what}: Kaggle answered: {error or 'no result'}; nothing was published")
    return PublishResult(ref=ref, action="new version" if exists else "created", url=getattr(result, "url", None))


def publish_model(folder: Path, owner: str, model_slug: str, framework: str, instance_slug: str, notes: str,
                  dir_mode: str = "tar", api: Any = None) -> PublishResult:
    """Create the model and its instance (first upload) or a new instance version; returns the
    ``owner/model/framework/instance/<version>`` ref a kernel's ``model_sources`` needs."""
    api = api or client()
    model_ref = f"{owner}/{model_slug}"
    instance_ref = f"{model_ref}/{framework}/{instance_slug}"
    _check_owner(api, model_ref, "model")
    with contextlib.redirect_stdout(io.StringIO()):
        model_existed = _exists(lambda: api.model_get(model_ref), f"checking model {model_ref}")
        if not model_existed:
            with _kaggle_call(f"creating model {model_ref}"):
                _raise_on_error(api.model_create_new(str(folder)), f"creating model {model_ref}")
        instance_existed = _exists(lambda: api.model_instance_get(instance_ref),
                                   f"checking model instance {instance_ref}")
        what = f"{'versioning' if instance_existed else 'creating'} model instance {instance_ref}"
        try:
            with _kaggle_call(what):
                if instance_existed:
                    result = api.model_instance_version_create(instance_ref, str(folder), notes, quiet=True,
                                                               dir_mode=dir_mode)
                else:
                    result = api.model_instance_create(str(folder), quiet=True, dir_mode=dir_mode)
                _raise_on_error(result, what)
        except KaggleError as exc:
            if model_existed:
                raise
            raise KaggleError(f"{exc}. Note: model {model_ref} was created just before and holds no weights "
                              f"yet; run the upload again to add them.") from None
        with _kaggle_call(f"reading model instance {instance_ref}"):
            version = int(api.model_instance_get(instance_ref).version_number or 1)
    return PublishResult(ref=f"{instance_ref}/{version}", action="new version" if instance_existed else "created",
                         url=getattr(result, "url", None), version=version)


def _exists(get: Callable[[], Any], what: str) -> bool:
    """True when ``get`` succeeds, False on HTTP 404; any other failure is a ``KaggleError``."""
    from requests.exceptions import HTTPError

    with _kaggle_call(what):
        try:
            get()
        except HTTPError as exc:
            if _http_status(exc) == 404:
                return False
            raise
    return True


def _raise_on_error(result: Any, what: str) -> None:
    error = getattr(result, "error", None)
    if result is None or error:
        raise KaggleError(f"{what}: Kaggle answered: {error or 'no result'}")


def _check_owner(api: Any, ref: str, kind: str) -> None:
    owner = ref.split("/", 1)[0]
    me = username(api)
    if me and owner.lower() != me.lower():
        raise KaggleError(f"the {kind} id {ref} belongs to '{owner}', but the credentials are for '{me}': "
                          f"use {me}/{ref.split('/', 1)[1]} (or the owner's credentials)")


# --------------------------------------------------------------------------------------------------------------
# Kernels, submissions, competition data


def push_kernel(folder: Path, timeout_seconds: int | None = None, accelerator: str | None = None,
                api: Any = None) -> PushResult:
    """``kaggle kernels push``: the client validates kernel-metadata.json, then sends SaveKernel."""
    api = api or client()
    what = f"pushing kernel from {folder}"
    with _kaggle_call(what), contextlib.redirect_stdout(io.StringIO()):
        result = api.kernels_push(str(folder), str(timeout_seconds) if timeout_seconds else None, accelerator)
    if result is None or result.error:
        raise KaggleError(f"{what}: Kaggle answered: {getattr(result, 'error', None) or 'no result'}")
    rejected = {name: list(getattr(result, attr) or []) for name, attr in (
        ("datasets", "invalid_dataset_sources"), ("competitions", "invalid_competition_sources"),
        ("kernels", "invalid_kernel_sources"), ("models", "invalid_model_sources"))}
    rejected = {name: refs for name, refs in rejected.items() if refs}
    if rejected:
        raise KaggleError(f"kernel {result.ref} version {result.version_number} was saved, but Kaggle did not "
                          f"attach these sources: {rejected}. The run will not see them: fix the ids and push again.")
    return PushResult(ref=result.ref or "", version=result.version_number, url=result.url or None)


def kernel_status(ref: str, api: Any = None) -> KernelStatus:
    api = api or client()
    with _kaggle_call(f"status of kernel {ref}"):
        response = api.kernels_status(ref)
    state = getattr(response.status, "name", str(response.status))
    return KernelStatus(state=state, failure_message=response.failure_message or None)


def wait_for_kernel(ref: str, poll_seconds: float = 30.0, timeout_seconds: float | None = None,
                    on_poll: Callable[[KernelStatus, float], None] | None = None, api: Any = None,
                    sleep: Callable[[float], None] = time.sleep) -> KernelStatus:
    """Poll until the run ends (COMPLETE, ERROR, cancelled) or ``timeout_seconds`` pass."""
    api = api or client()
    start = time.monotonic()
    while True:
        status = kernel_status(ref, api=api)
        elapsed = time.monotonic() - start
        if on_poll:
            on_poll(status, elapsed)
        if status.done:
            return status
        if timeout_seconds is not None and elapsed + poll_seconds > timeout_seconds:
            raise KaggleError(f"kernel {ref} still {status.state} after {elapsed:.0f}s; run status again later")
        sleep(poll_seconds)


def kernel_output(ref: str, out_dir: Path, version: int | None = None, api: Any = None) -> list[Path]:
    """Download a run's output files and its log (``<slug>.log``) into ``out_dir``: the latest run's, or version
    ``version``'s (the client asks for ``owner/slug/N`` as the API's version label ``vN``)."""
    api = api or client()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    which = ref if version is None else f"{ref}/{version}"
    with _kaggle_call(f"downloading output of kernel {which}"), contextlib.redirect_stdout(io.StringIO()):
        files, _ = api.kernels_output(which, str(out_dir), force=True, quiet=True)
    resolved = [Path(f).resolve() for f in files]
    outside = [str(p) for p in resolved if out_dir.resolve() not in p.parents]
    if outside:
        raise KaggleError(f"kernel {ref} output named files outside {out_dir}: {outside}")
    return [Path(f) for f in files]


def submit_kernel(competition: str, kernel_ref: str, version: int | None, message: str,
                  file_name: str = "submission.json", api: Any = None) -> str:
    """A code-competition entry: ``kaggle competitions submit SLUG -k owner/kernel -v N -f FILE -m MSG``."""
    api = api or client()
    if kernel_ref.count("/") != 1:
        raise KaggleError(f"kernel id must be owner/slug, got {kernel_ref!r}")
    with _kaggle_call(f"submitting {kernel_ref} v{version} to {competition}"), \
            contextlib.redirect_stdout(io.StringIO()):
        response = api.competition_submit_code(file_name, message, competition, kernel_ref, version, quiet=True)
    return str(getattr(response, "message", "") or "submitted")


def download_competition(competition: str, out_dir: Path, api: Any = None) -> list[Path]:
    """Fetch the competition's files and unzip them into ``out_dir``; returns the extracted files. A failed
    download leaves none of the folders it made."""
    api = api or client()
    out_dir = Path(out_dir)
    with made_folder(out_dir):
        before = set(out_dir.glob("*.zip"))
        with _kaggle_call(f"downloading competition {competition}"), contextlib.redirect_stdout(io.StringIO()):
            api.competition_download_files(competition, path=str(out_dir), force=True, quiet=True)
        archives = sorted(set(out_dir.glob("*.zip")) | before)
        if not archives:
            raise KaggleError(f"downloading competition {competition}: no archive arrived in {out_dir}")
        return [path for archive in archives for path in _unzip(archive, out_dir)]


def download_dataset(ref: str, out_dir: Path, api: Any = None) -> list[Path]:
    """Fetch a Kaggle dataset (``owner/slug``, or ``owner/slug/version``) and unzip it into ``out_dir``; returns
    the extracted files. Folders inside the dataset (NVARC's subsets) keep their layout; a failed download leaves
    none of the folders it made."""
    _owner, slug, _version = split_dataset_id(ref)
    api = api or client()
    out_dir = Path(out_dir)
    with made_folder(out_dir):
        with _kaggle_call(f"downloading dataset {ref}"), contextlib.redirect_stdout(io.StringIO()):
            api.dataset_download_files(ref, path=str(out_dir), force=True, quiet=True)
        archive = out_dir / f"{slug}.zip"
        if not archive.is_file():
            raise KaggleError(f"downloading dataset {ref}: no archive arrived in {out_dir}")
        return _unzip(archive, out_dir)


def _unzip(archive: Path, out_dir: Path) -> list[Path]:
    """Extract ``archive`` into ``out_dir`` (a member that would land outside it is refused) and remove it."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise KaggleError(f"{archive}: not a zip archive (a download cut short?); run the download again") from None
    with zf:
        for member in zf.namelist():
            target = (out_dir / member).resolve()
            if out_dir.resolve() not in target.parents:
                raise KaggleError(f"{archive}: member {member!r} would land outside {out_dir}")
        zf.extractall(out_dir)
        extracted = [out_dir / m for m in zf.namelist() if not m.endswith("/")]
    os.remove(archive)
    return extracted
