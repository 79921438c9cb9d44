"""TLS and mutual TLS with certificates made by openssl for the test."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from control_plane.edgectl.cli import main
from cpclient import MemoryModuleStore, NodeIdentity, NodeSession, SessionSettings, TlsSettings
from cpclient.backoff import Backoff
from tests.control_plane.support import control_plane_in_process

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=test-ca", cwd=folder)  # fmt: skip
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=folder)  # fmt: skip
        (folder / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=folder)  # fmt: skip
    return folder


async def test_mutual_tls_node_session_and_edgectl(
    pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_plane_in_process(
        tmp_path / "cp", tls_cert=pki / "server.pem", tls_key=pki / "server.key", client_ca=pki / "ca.pem"
    ) as live:
        tls = TlsSettings(
            ca=(pki / "ca.pem").read_bytes(),
            cert=(pki / "client.pem").read_bytes(),
            key=(pki / "client.key").read_bytes(),
        )
        session = NodeSession(
            SessionSettings(
                target=live.address, token=live.tokens["node"], tls=tls, backoff=Backoff(initial_s=0.05)
            ),
            NodeIdentity(node_id="tls-a", region="eu-1"),
            apply=lambda assignment, modules: None,
            store=MemoryModuleStore(),
        )
        task = asyncio.create_task(session.run(), name="tls-node")
        try:
            await session.wait_until(lambda s: s.connected, 10)
        finally:
            task.cancel()
            await asyncio.wait([task])
        base = [
            f"--server={live.address}",
            f"--token={live.tokens['viewer']}",
            "--ca-cert",
            str(pki / "ca.pem"),
        ]
        with_cert = [*base, "--client-cert", str(pki / "client.pem"), "--client-key", str(pki / "client.key")]
        assert await asyncio.to_thread(main, [*with_cert, "nodes", "list"]) == 0
        assert "tls-a" in capsys.readouterr().out
        # Without a client certificate the handshake fails: one clear line, no traceback.
        assert await asyncio.to_thread(main, [*base, "nodes", "list"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"edgectl: cannot reach the control plane at {live.address}")
        assert "Traceback" not in err
