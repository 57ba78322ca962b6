"""A small stand-in for Kaggle's API on 127.0.0.1, for driving the real ``kaggle`` client in tests.

It answers ``POST /api/v1/<service>/<Method>`` (also the absolute-URI form a proxy receives), takes blob
uploads by ``PUT /upload/<token>`` and serves files by ``GET /files/<name>``. Every call is recorded so a
test can assert what the client sent. It never forwards anything anywhere.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"


@dataclass
class Call:
    method: str  # e.g. "SaveKernel", or "PUT" / "GET" for blob traffic
    service: str
    body: dict
    headers: dict


@dataclass
class FakeKaggle:
    username: str = "tester"
    datasets: set[str] = field(default_factory=set)  # existing owner/slug
    taken_slugs: set[str] = field(default_factory=set)  # CreateDataset answers "already in use"
    models: set[str] = field(default_factory=set)
    instances: dict[str, int] = field(default_factory=dict)  # owner/model/framework/instance -> version
    kernel_states: list[str] = field(default_factory=lambda: ["QUEUED", "RUNNING", "COMPLETE"])
    fail: dict[str, int] = field(default_factory=dict)  # method name -> HTTP status to answer
    fail_uploads: set[str] = field(default_factory=set)  # blob names whose PUT fails
    files: dict[str, bytes] = field(default_factory=dict)  # served by GET /files/<name>: the latest run's output
    outputs: dict[str, dict[str, bytes]] = field(default_factory=dict)  # version label ("v2") -> that run's output
    token_active: bool = True  # IntrospectToken's answer
    rejected_sources: list[str] = field(default_factory=list)  # SaveKernel's invalidDatasetSources
    calls: list[Call] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)  # token -> bytes
    blob_names: dict[str, str] = field(default_factory=dict)  # token -> file name

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._status_calls = 0
        self._server = ThreadingHTTPServer((LOOPBACK, 0), _handler_for(self))
        self.port = self._server.server_address[1]
        self.base = f"http://{LOOPBACK}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- what tests read

    def bodies(self, method: str) -> list[dict]:
        return [c.body for c in self.calls if c.method == method]

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    def received_files(self, tokens: list[str]) -> dict[str, bytes]:
        """Files as Kaggle would store them: plain blobs by name, zip/tar archives expanded under their stem."""
        out: dict[str, bytes] = {}
        for token in tokens:
            name, data = self.blob_names[token], self.blobs[token]
            if name.endswith(".zip"):
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    for member in zf.namelist():
                        if not member.endswith("/"):
                            out[f"{name[:-4]}/{member}"] = zf.read(member)
            elif name.endswith(".tar"):
                import tarfile

                with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                    for member in tf.getmembers():
                        if member.isfile():
                            out[f"{name[:-4]}/{member.name.lstrip('./')}"] = tf.extractfile(member).read()
            else:
                out[name] = data
        return out

    # ---- answers

    def answer(self, service: str, method: str, body: dict) -> tuple[int, dict]:
        if method in self.fail:
            status = self.fail[method]
            return status, {"code": status, "message": f"fake {method} refused"}
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return 501, {"code": 501, "message": f"fake server has no {service}/{method}"}
        return handler(body)

    def _IntrospectToken(self, body: dict) -> tuple[int, dict]:
        return 200, {"active": self.token_active, "username": self.username if self.token_active else ""}

    def _GetDatasetStatus(self, body: dict) -> tuple[int, dict]:
        ref = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
        if ref in self.datasets:
            return 200, {"status": "READY"}
        return 404, {"code": 404, "message": f"dataset {ref} not found"}

    def _StartBlobUpload(self, body: dict) -> tuple[int, dict]:
        token = f"tok{next(self._tokens)}"
        self.blob_names[token] = body["name"]
        return 200, {"token": token, "createUrl": f"{self.base}/upload/{token}"}

    def _CreateDataset(self, body: dict) -> tuple[int, dict]:
        ref = f"{body['ownerSlug']}/{body['slug']}"
        if body["slug"] in self.taken_slugs:
            return 200, {"status": "error", "error": f"The slug {body['slug']} is already in use"}
        self.datasets.add(ref)
        return 200, {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok"}

    def _CreateDatasetVersion(self, body: dict) -> tuple[int, dict]:
        ref = f"{body['ownerSlug']}/{body['datasetSlug']}"
        return 200, {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok"}

    def _GetModel(self, body: dict) -> tuple[int, dict]:
        ref = f"{body['ownerSlug']}/{body['modelSlug']}"
        if ref in self.models:
            return 200, {"ref": ref, "slug": body["modelSlug"]}
        return 404, {"code": 404, "message": f"model {ref} not found"}

    def _CreateModel(self, body: dict) -> tuple[int, dict]:
        ref = f"{body['ownerSlug']}/{body['slug']}"
        self.models.add(ref)
        return 200, {"ref": ref, "url": f"https://www.kaggle.com/models/{ref}"}

    @staticmethod
    def _instance_ref(body: dict) -> str:
        framework = str(body.get("framework", "")).replace("MODEL_FRAMEWORK_", "").lower()
        return f"{body['ownerSlug']}/{body['modelSlug']}/{framework}/{body['instanceSlug']}"

    def _GetModelInstance(self, body: dict) -> tuple[int, dict]:
        ref = self._instance_ref(body)
        if ref in self.instances:
            return 200, {"versionNumber": self.instances[ref], "slug": body["instanceSlug"]}
        return 404, {"code": 404, "message": f"model instance {ref} not found"}

    def _CreateModelInstance(self, body: dict) -> tuple[int, dict]:
        inner = body["body"]
        ref = self._instance_ref({**body, "framework": inner["framework"], "instanceSlug": inner["instanceSlug"]})
        self.instances[ref] = 1
        return 200, {"ref": ref, "url": f"https://www.kaggle.com/models/{ref}"}

    def _CreateModelInstanceVersion(self, body: dict) -> tuple[int, dict]:
        ref = self._instance_ref(body)
        self.instances[ref] = self.instances.get(ref, 0) + 1
        return 200, {"ref": ref, "url": f"https://www.kaggle.com/models/{ref}"}

    def _SaveKernel(self, body: dict) -> tuple[int, dict]:
        return 200, {"ref": "/code/" + body["slug"], "url": f"https://www.kaggle.com/code/{body['slug']}",
                     "versionNumber": 3, "invalidDatasetSources": list(self.rejected_sources)}

    def _GetKernelSessionStatus(self, body: dict) -> tuple[int, dict]:
        state = self.kernel_states[min(self._status_calls, len(self.kernel_states) - 1)]
        self._status_calls += 1
        answer = {"status": state}
        if state == "ERROR":
            answer["failureMessage"] = "Notebook Threw Exception"
        return 200, answer

    def _ListKernelSessionOutput(self, body: dict) -> tuple[int, dict]:
        label = body.get("versionLabel") or ""
        if label and label not in self.outputs:
            return 404, {"code": 404, "message": f"kernel {body.get('kernelSlug')} has no version {label}"}
        files = self.outputs[label] if label else self.files
        where = f"{self.base}/files/{label + '/' if label else ''}"
        return 200, {"files": [{"url": where + name, "fileName": name} for name in files if not name.endswith(".zip")],
                     "log": '[{"stream_name":"stdout","data":"done\\n"}]'}

    def _CreateCodeSubmission(self, body: dict) -> tuple[int, dict]:
        return 200, {"message": "Submission successful", "ref": 42}


def _handler_for(fake: FakeKaggle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output clean
            pass

        def _path(self) -> str:
            return urlsplit(self.path).path if "://" in self.path else self.path.split("?")[0]

        def _read(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, payload: bytes, content_type: str = "application/json",
                  extra: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            path = self._path()
            raw = self._read()
            parts = path.strip("/").split("/")
            if len(parts) < 4 or parts[:2] != ["api", "v1"]:
                self._send(404, b'{"code": 404, "message": "unknown path"}')
                return
            service, method = parts[2], parts[3]
            body = json.loads(raw or b"{}")
            with fake._lock:
                fake.calls.append(Call(method, service, body, dict(self.headers)))
                if method in ("DownloadDataFiles", "DownloadDataset") and method not in fake.fail:
                    name = f"{body.get('competitionName') or body.get('datasetSlug')}.zip"
                    self._send(302, b"", extra={"Location": f"{fake.base}/files/{name}"})
                    return
                status, answer = fake.answer(service, method, body)
            self._send(status, json.dumps(answer).encode())

        def do_PUT(self) -> None:  # noqa: N802
            token = self._path().rsplit("/", 1)[-1]
            data = self._read()
            with fake._lock:
                fake.calls.append(Call("PUT", "upload", {"token": token, "size": len(data)}, dict(self.headers)))
                if fake.blob_names.get(token) in fake.fail_uploads:
                    self._send(400, b'{"message": "upload refused"}')
                    return
                fake.blobs[token] = data
            self._send(200, b"{}")

        def do_GET(self) -> None:  # noqa: N802
            label, _, name = self._path().removeprefix("/files/").rpartition("/")
            with fake._lock:
                fake.calls.append(Call("GET", "files", {"name": name, "version": label}, dict(self.headers)))
                data = (fake.outputs.get(label, {}) if label else fake.files).get(name)
            if data is None:
                self._send(404, b"{}")
            else:
                self._send(200, data, "application/octet-stream")

    return Handler
