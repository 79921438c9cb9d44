"""How a process reaches the world's broker: URL, credentials, protocol version, and the
MQTT v5 properties of the contract (response topic, correlation data, ``traceparent``).

Mosquitto speaks MQTT v5; amqtt (the embedded fallback) only 3.1.1, where the contract's v5
properties fall back to the payload: results go to the gateway's ``cmd/result`` topic, the
``command_id`` correlates, and ``traceparent`` travels as a payload key.

``mqtts://host:port`` (default port 8883) speaks TLS, verifying the broker against
``--mqtt-ca`` (else the system's roots) and presenting ``--mqtt-cert``/``--mqtt-key`` when
the broker asks for a client certificate (mutual TLS, as ``mqtt-broker --client-ca`` does).
The password still says who the client is.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from runtime.cli import add_flag
from runtime.errors import ConfigError

Protocol = Literal["5", "3.1.1"]
PROTOCOLS: tuple[Protocol, ...] = ("5", "3.1.1")
TRACEPARENT = "traceparent"
SCHEMES = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerLink:
    """Where the broker is and who we are to it."""

    url: str
    username: str
    password: str = field(repr=False)
    protocol: Protocol = "5"
    # For mqtts:// only: the CA to verify the broker with (None: the system's roots) and,
    # for mutual TLS, our certificate and key.
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def __post_init__(self) -> None:
        parsed = urlsplit(self.url)
        if parsed.scheme not in SCHEMES or not parsed.hostname:
            raise ConfigError(
                field="--mqtt", reason=f"{self.url!r} is not an mqtt://host:port or mqtts://host:port URL"
            )
        self._check_tls(parsed.scheme == "mqtts")
        try:
            parsed.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ConfigError(field="--mqtt", reason=f"{self.url!r}: {exc}") from None
        if not self.username or not self.password:
            raise ConfigError(
                field="--mqtt-user/--mqtt-password", reason="the broker refuses anonymous clients"
            )
        if self.protocol not in PROTOCOLS:
            raise ConfigError(field="--mqtt-protocol", reason=f"must be 5 or 3.1.1 (got {self.protocol!r})")

    def _check_tls(self, tls: bool) -> None:
        if not tls and (self.ca or self.cert or self.key):
            raise ConfigError(field="--mqtt-ca/--mqtt-cert/--mqtt-key", reason="need an mqtts:// URL")
        if (self.cert is None) != (self.key is None):
            raise ConfigError(
                field="--mqtt-cert/--mqtt-key",
                reason="give both a client certificate and its key, or neither",
            )
        for path, flag in ((self.ca, "--mqtt-ca"), (self.cert, "--mqtt-cert"), (self.key, "--mqtt-key")):
            if path is not None and not path.is_file():
                raise ConfigError(field=flag, reason=f"{path} is not a readable file")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parsed = urlsplit(self.url)
        return parsed.port or SCHEMES[parsed.scheme]

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    def tls_parameters(self) -> aiomqtt.TLSParameters | None:
        """What aiomqtt needs to speak TLS to the broker (None: plain MQTT)."""
        if not self.tls:
            return None

        def text(path: Path | None) -> str | None:
            return None if path is None else str(path)

        return aiomqtt.TLSParameters(ca_certs=text(self.ca), certfile=text(self.cert), keyfile=text(self.key))

    @property
    def v5(self) -> bool:
        return self.protocol == "5"

    def client(
        self,
        identifier: str,
        *,
        will: aiomqtt.Will | None = None,
        keepalive_s: int = 10,
        timeout_s: float = 10.0,
        max_queued_outgoing: int | None = None,
    ) -> aiomqtt.Client:
        """A client (not yet connected: enter it). A clean session each time: the retained
        status and the subscriptions made on connect are all a subscriber needs."""
        return aiomqtt.Client(
            self.host,
            self.port,
            identifier=identifier,
            username=self.username,
            password=self.password,
            protocol=aiomqtt.ProtocolVersion.V5 if self.v5 else aiomqtt.ProtocolVersion.V311,
            will=will,
            keepalive=keepalive_s,
            timeout=timeout_s,
            max_queued_outgoing_messages=max_queued_outgoing,
            tls_params=self.tls_parameters(),
        )


def add_mqtt_flags(parser: argparse.ArgumentParser, *, env_prefix: str, help_url: str) -> None:
    """--mqtt, --mqtt-user, --mqtt-password (prefer the environment), --mqtt-protocol."""
    add_flag(parser, "--mqtt", env=f"{env_prefix}_MQTT", default=None, help=help_url)
    add_flag(parser, "--mqtt-user", env=f"{env_prefix}_MQTT_USER", default=None, help="MQTT user name")
    add_flag(
        parser, "--mqtt-password", env=f"{env_prefix}_MQTT_PASSWORD", default=None,
        help=f"MQTT password (prefer the environment variable {env_prefix}_MQTT_PASSWORD)",
    )  # fmt: skip
    add_flag(
        parser, "--mqtt-protocol", env=f"{env_prefix}_MQTT_PROTOCOL", default="5", choices=list(PROTOCOLS),
        help="MQTT version the broker speaks (Mosquitto: 5; amqtt: 3.1.1)",
    )  # fmt: skip
    add_flag(
        parser, "--mqtt-ca", env=f"{env_prefix}_MQTT_CA", default=None, convert=Path, metavar="PATH",
        help="with mqtts://: the CA (PEM) the broker's certificate must chain to (default: system roots)",
    )  # fmt: skip
    add_flag(
        parser, "--mqtt-cert", env=f"{env_prefix}_MQTT_CERT", default=None, convert=Path, metavar="PATH",
        help="with mqtts://: client certificate (PEM) for a broker that requires one, with --mqtt-key",
    )  # fmt: skip
    add_flag(
        parser, "--mqtt-key", env=f"{env_prefix}_MQTT_KEY", default=None, convert=Path, metavar="PATH",
        help="the client certificate's private key (PEM)",
    )  # fmt: skip


def link_from_args(args: argparse.Namespace) -> BrokerLink | None:
    """The link the flags describe; None without --mqtt; ConfigError when incomplete."""
    if args.mqtt is None:
        if args.mqtt_user is not None or args.mqtt_password is not None:
            raise ConfigError(field="--mqtt-user/--mqtt-password", reason="need --mqtt")
        return None
    return BrokerLink(
        url=args.mqtt,
        username=args.mqtt_user or "",
        password=args.mqtt_password or "",
        protocol=args.mqtt_protocol,
        ca=args.mqtt_ca,
        cert=args.mqtt_cert,
        key=args.mqtt_key,
    )


def publish_properties(
    *, response_topic: str = "", correlation_data: bytes = b"", traceparent: str = ""
) -> Properties:
    """v5 PUBLISH properties of the contract (only for a v5 link)."""
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if response_topic:
        properties.ResponseTopic = response_topic
    if correlation_data:
        properties.CorrelationData = correlation_data
    if traceparent:
        properties.UserProperty = [(TRACEPARENT, traceparent)]
    return properties


def response_of(message: aiomqtt.Message) -> tuple[str, bytes]:
    """The v5 response topic and correlation data of a message (empty under 3.1.1)."""
    properties: Any = message.properties
    if properties is None:
        return "", b""
    topic = getattr(properties, "ResponseTopic", "") or ""
    correlation = getattr(properties, "CorrelationData", b"") or b""
    return str(topic), bytes(correlation)


def traceparent_of(message: aiomqtt.Message, body: dict[str, Any] | None = None) -> str:
    """The W3C traceparent: a v5 user property, else the payload key (3.1.1)."""
    properties: Any = message.properties
    for key, value in getattr(properties, "UserProperty", None) or ():
        if key == TRACEPARENT:
            return str(value)
    value = (body or {}).get(TRACEPARENT)
    return value if isinstance(value, str) else ""
