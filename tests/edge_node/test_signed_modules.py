"""An edge node with --trusted-key under a real control plane: signed modules deploy; unsigned,
wrongly signed and tampered ones are NACKed (naming the module and the key id) before they are
compiled, and the node keeps serving what it had."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import aiohttp

from geo.world import World
from runtime.signing import generate_key_pair, load_signing_key, sign_digest
from simulator.supervisor import ChildSpec, RunningChild, Supervisor
from tests.conftest import REPO_ROOT
from tests.control_plane.support import sha, wasm
from tests.edge_node.conftest import REGION, node_url
from tests.edge_node.test_agent import (
    GEO_HELLO,
    ControlPlane,
    edgectl,
    greeting,
    node_spec,
    start_control_plane,
    wait_for_app,
)

NODE_ID = f"{REGION}-a"


def module_app(folder: Path, *, version: str, marker: str) -> tuple[Path, str]:
    """An app of one small WAGI module of its own (``marker`` makes its digest differ)."""
    folder.mkdir(parents=True)
    module = wasm(
        f'(module (memory (export "memory") 1) (data (i32.const 0) "{marker}") (func (export "_start")))'
    )
    (folder / "m.wasm").write_bytes(module)
    (folder / "app.toml").write_text(
        f'[app]\nname = "geo-hello"\nversion = "{version}"\n'
        '[[route]]\npath = "/m"\nmodule = "m"\n[module.m]\nsource = "m.wasm"\n'
    )
    return folder / "app.toml", sha(module)


def trusting_node(cp: ControlPlane, data_dir: Path, public_key: Path) -> ChildSpec:
    spec = node_spec(cp, data_dir)
    return ChildSpec(name=spec.name, argv=(*spec.argv, "--trusted-key", str(public_key)))


async def refused(cp: ControlPlane, ref: str) -> str:
    code, output = await edgectl(cp, "deploy", ref, "--all", "--timeout", "20")
    assert code == 1, output
    return " ".join(output.split())  # rich wraps long lines


async def still_serves_geo_hello(node: RunningChild, world: World) -> None:
    async with aiohttp.ClientSession() as client, client.get(f"{node_url(node)}/readyz") as response:
        assert (await response.json())["version"] == "1.0.0"
    assert "안녕하세요" in await greeting(node, world, "KR")


async def test_only_modules_signed_by_a_trusted_key_are_run(
    supervisor: Supervisor, tmp_path: Path, world: World
) -> None:
    trusted, other = tmp_path / "keys" / "release.pem", tmp_path / "keys" / "other.pem"
    trusted_id, other_id = generate_key_pair(trusted), generate_key_pair(other)
    cp = await start_control_plane(supervisor, tmp_path / "cp")
    node = await supervisor.start(trusting_node(cp, tmp_path / "node", Path(f"{trusted}.pub")))

    # Signed by the trusted key: deployed and served.
    code, output = await edgectl(cp, "apps", "register", str(GEO_HELLO / "app.toml"), "--sign", str(trusted))
    assert code == 0, output
    assert (await edgectl(cp, "deploy", "geo-hello@1.0.0", "--all"))[0] == 0
    await wait_for_app(node, "1.0.0")

    # Unsigned: NACKed, naming the module, its digest and the key the node trusts.
    manifest, digest = module_app(tmp_path / "unsigned", version="2.0.0", marker="unsigned")
    assert (await edgectl(cp, "apps", "register", str(manifest)))[0] == 0
    output = await refused(cp, "geo-hello@2.0.0")
    assert f"{NODE_ID}: module_unsigned: module m ({digest[:12]}) refused: it is unsigned" in output
    assert f"trusted keys: {trusted_id}" in output
    await still_serves_geo_hello(node, world)

    # Signed by a key the node does not trust: NACKed, naming the signer.
    manifest, digest = module_app(tmp_path / "other", version="3.0.0", marker="other key")
    assert (await edgectl(cp, "apps", "register", str(manifest), "--sign", str(other)))[0] == 0
    output = await refused(cp, "geo-hello@3.0.0")
    assert f"module_untrusted_signer: module m ({digest[:12]}) refused: signed by key {other_id}" in output
    await still_serves_geo_hello(node, world)

    # Tampered: the stored signature is swapped for the trusted key's signature of another
    # module (as a compromised control plane might): the node's own check refuses it.
    manifest, digest = module_app(tmp_path / "tampered", version="4.0.0", marker="tampered")
    assert (await edgectl(cp, "apps", "register", str(manifest), "--sign", str(trusted)))[0] == 0
    forged = sign_digest(load_signing_key(trusted), sha(b"some other module")).signature
    with sqlite3.connect(tmp_path / "cp" / "control-plane.sqlite3") as db:
        db.execute("UPDATE module_signatures SET signature = ? WHERE sha256 = ?", (forged, digest))
    output = await refused(cp, "geo-hello@4.0.0")
    assert (
        f"module_bad_signature: module m ({digest[:12]}) refused: the signature by key {trusted_id}" in output
    )
    await still_serves_geo_hello(node, world)


async def test_a_bad_trusted_key_file_stops_the_node_with_a_clear_error(tmp_path: Path) -> None:
    generate_key_pair(tmp_path / "k.pem")
    for given, expected in (
        (tmp_path / "missing.pub", "No such file"),
        (tmp_path / "k.pem", "holds a private key; give its public key"),
    ):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge_node", "--region", REGION, "--trusted-key", str(given),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO_ROOT,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode != 0
        assert err.decode().startswith(f"edge-node: --trusted-key: key file {given}: {expected}"), err
