"""Password files the brokers read, from the world's users (pure: no I/O).

Mosquitto 2 reads ``user:$7$ITERATIONS$SALT$HASH`` lines (PBKDF2-HMAC-SHA512, base64), the
format ``mosquitto_passwd`` writes; amqtt reads SHA-512 crypt (``$6$``) lines.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping

from mqtt_broker.errors import BrokerConfigError

MOSQUITTO_ITERATIONS = 101  # what mosquitto_passwd 2.0 uses
USER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_users(users: Mapping[str, str]) -> None:
    if not users:
        raise BrokerConfigError("no users: the broker refuses anonymous clients, so it needs at least one")
    for user, password in users.items():
        if not USER.match(user):
            raise BrokerConfigError(f"user {user!r}: letters, digits, '_', '.', '-' only (1-64)")
        if len(password) < 8 or ":" in password or "\n" in password:
            raise BrokerConfigError(
                f"user {user}: a password of at least 8 characters, without ':' or newlines"
            )


def mosquitto_line(user: str, password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, MOSQUITTO_ITERATIONS, 64)
    encoded = f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    return f"{user}:$7${MOSQUITTO_ITERATIONS}${encoded}"


def mosquitto_file(users: Mapping[str, str]) -> str:
    check_users(users)
    return "".join(mosquitto_line(user, password) + "\n" for user, password in sorted(users.items()))
