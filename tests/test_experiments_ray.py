"""The Ray executor on a real local Ray (2 CPUs): a tiny grid, one run failing; and the
``--address`` probe against local servers that are not Ray (no Ray needed)."""

from __future__ import annotations

import os
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from rankrobust.cli.main import main
from rankrobust.errors import ConfigError
from rankrobust.experiments import ResultsStore, run_sweep, study_from_dict
from rankrobust.experiments.ray_executor import HTTP2_PREFACE, check_ray_address, speaks_http2


def test_ray_executor_runs_a_tiny_grid(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")

    study = study_from_dict({
        "name": "ray", "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [8]},
        "train": {"epochs": 1, "batch_size": 256, "device": "cpu"}, "evaluation": {"n": 16},
        "seeds": [0, 1],
        "variants": [{"name": "ok"},
                     {"name": "broken", "train": {"epochs": 2, "lr": 1e30}}],  # diverges
    })
    summary = run_sweep(study, out=tmp_path, executor="ray", progress=False)
    assert not ray.is_initialized()  # the local Ray it started is shut down again
    assert (summary.executed, summary.complete, summary.failed, summary.exit_code) == (4, 2, 2, 1)
    with ResultsStore(summary.db) as store:
        runs = store.runs()
        assert set(runs[runs.status == "complete"].variant) == {"ok"}
        assert runs[runs.status == "failed"].error.str.startswith("TrainingDivergedError").all()
        assert runs.node.str.fullmatch("[0-9a-f]{56}").all()  # the Ray node id that ran it
        assert (runs.worker_pid > 0).all() and not (runs.worker_pid == os.getpid()).any()
        assert len(store.epoch_metrics()) == 2 and len(store.structure()) == 2 * 2 * 2
    again = run_sweep(study, out=tmp_path, executor="ray", progress=False)
    assert again.executed == 0


# -- the --address probe: local servers that accept but are not Ray ----------------------------
SETTINGS_FRAME = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x03\x00\x00\x00\x64"  # max streams 100
SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


class _Silent(socketserver.BaseRequestHandler):
    """Accepts, reads whatever comes and never answers, until the client leaves."""

    def handle(self) -> None:
        self.request.settimeout(30)
        try:
            while self.request.recv(1024):
                pass
        except OSError:
            pass


class _FakeHTTP2(socketserver.BaseRequestHandler):
    """Reads the client preface and its SETTINGS, answers SETTINGS + ACK like a gRPC server."""

    def handle(self) -> None:
        self.request.settimeout(10)
        data = b""
        while len(data) < len(HTTP2_PREFACE) + 9:
            chunk = self.request.recv(1024)
            if not chunk:
                return
            data += chunk
        assert data.startswith(HTTP2_PREFACE)
        self.request.sendall(SETTINGS_FRAME + SETTINGS_ACK)


class _HTTP1(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def _serving(handler: type[socketserver.BaseRequestHandler]) -> Iterator[int]:
    """A threading server with ``handler`` on 127.0.0.1 in a daemon thread; yields its port."""
    server: socketserver.TCPServer
    if issubclass(handler, BaseHTTPRequestHandler):
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    else:
        server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("handler", [_Silent, _HTTP1], ids=["silent", "http1"])
def test_an_address_that_is_not_ray_fails_in_seconds_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], handler: type[socketserver.BaseRequestHandler]
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "dataset": "synthetic", "model": "mlp",
                                    "train": {"epochs": 1, "device": "cpu"}, "seeds": [0]}))
    out = tmp_path / "out"
    with _serving(handler) as port:  # a hang in ray.init would trip the timeout mark
        argv = ["sweep", str(path), "--out", str(out), "--executor", "ray",
                "--address", f"127.0.0.1:{port}"]
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rankrobust: error: ") and err.count("\n") == 1, err
    assert f"127.0.0.1:{port}: the port answers but is not a Ray cluster (GCS)" in err
    assert not out.exists() or not any(out.iterdir())  # no database, no lock


@pytest.mark.timeout(30)
def test_probe_tells_http2_from_silent_http1_and_closed_servers() -> None:
    with _serving(_FakeHTTP2) as port:
        assert speaks_http2("127.0.0.1", port, timeout=5)
        check_ray_address(f"127.0.0.1:{port}", timeout=5)
        check_ray_address(f"ray://127.0.0.1:{port}", timeout=5)
    with _serving(_HTTP1) as port:
        assert not speaks_http2("127.0.0.1", port, timeout=5)
    with _serving(_Silent) as port:  # the probe gives up at its timeout (else: the mark's)
        assert not speaks_http2("127.0.0.1", port, timeout=1)
        assert speaks_http2("127.0.0.1", port, timeout=1, handshake=False)  # TCP only (TLS)
    with socket.socket() as closed:  # bound, never listening: refused
        closed.bind(("127.0.0.1", 0))
        with pytest.raises(OSError):
            speaks_http2("127.0.0.1", closed.getsockname()[1], timeout=1)
        with pytest.raises(ConfigError, match="cannot reach a Ray cluster"):
            check_ray_address(f"127.0.0.1:{closed.getsockname()[1]}", timeout=1)


@pytest.mark.timeout(30)
def test_probe_skips_the_handshake_under_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A silent port is refused in plain text; under RAY_USE_TLS (a TLS cluster does not speak
    h2c) only the TCP connection is checked, so the same port is accepted, and a closed one
    is still refused."""
    with _serving(_Silent) as port:
        monkeypatch.delenv("RAY_USE_TLS", raising=False)
        with pytest.raises(ConfigError, match="is not a Ray cluster"):
            check_ray_address(f"127.0.0.1:{port}", timeout=1)
        monkeypatch.setenv("RAY_USE_TLS", "1")
        assert check_ray_address(f"127.0.0.1:{port}", timeout=1) is None
    with socket.socket() as closed:  # bound, never listening: refused under TLS too
        closed.bind(("127.0.0.1", 0))
        with pytest.raises(ConfigError, match="cannot reach a Ray cluster"):
            check_ray_address(f"127.0.0.1:{closed.getsockname()[1]}", timeout=1)
