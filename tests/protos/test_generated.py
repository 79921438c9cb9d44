"""The committed generated code must be exactly what `make protos` produces from the sources."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2

from protos import generate
from protos.edgecdn.v1 import nodes_pb2


def test_committed_code_matches_sources(tmp_path: Path) -> None:
    fresh = generate.generate(tmp_path)
    committed = generate.generated_files(generate.REPO_ROOT)
    assert fresh == committed, "generated file set differs: run `make protos` and commit"
    drifted = [
        str(path)
        for path in committed
        if (tmp_path / path).read_bytes() != (generate.REPO_ROOT / path).read_bytes()
    ]
    assert not drifted, f"generated code drifted from the .proto sources: {drifted}; run `make protos`"


def test_every_source_has_generated_code() -> None:
    sources = {path.stem for path in generate.proto_sources()}
    modules = {path.name.removesuffix("_pb2.py") for path in generate.generated_files(generate.REPO_ROOT)}
    assert sources <= modules


def test_every_message_and_field_is_commented() -> None:
    # Comments are part of the contract (issue: "comment every message and field").
    for source in generate.proto_sources():
        text = (generate.REPO_ROOT / source).read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(text):
            stripped = line.strip()
            is_declaration = stripped.startswith(("message ", "service ", "enum ", "rpc "))
            is_field = (
                stripped.endswith(";")
                and "=" in stripped
                and not stripped.startswith(("syntax", "package", "option", "//"))
            )
            if not (is_declaration or is_field):
                continue
            previous = text[number - 1].strip()
            assert previous.startswith("//"), f"{source}:{number + 1} has no comment: {stripped}"


def test_messages_round_trip_through_the_wire() -> None:
    hello = nodes_pb2.NodeMessage(
        hello=nodes_pb2.NodeHello(node_id="ap-northeast-2-a", region="ap-northeast-2", module_sha256s=["ab"])
    )
    decoded = nodes_pb2.NodeMessage.FromString(hello.SerializeToString())
    assert decoded == hello
    assert decoded.WhichOneof("message") == "hello"


def test_package_is_edgecdn_v1() -> None:
    proto = descriptor_pb2.FileDescriptorProto()
    nodes_pb2.DESCRIPTOR.CopyToProto(proto)
    assert proto.package == "edgecdn.v1"
    assert "NodeSessionService" in nodes_pb2.DESCRIPTOR.services_by_name
