"""Malformed requests for the local service's fuzz test, and a deterministic random request builder.

Kept apart from the test so the list of bad inputs is one readable place (the issue's closing note
quotes it).
"""

from __future__ import annotations

import random

# (name, raw body): every way a request body can be broken on the wire.
BAD_BODIES: list[tuple[str, bytes]] = [
    ("invalid UTF-8 inside a JSON string", b'{"name": "\xff\xfe"}'),
    ("JSON array nested 5,000 deep", b"[" * 5000 + b"]" * 5000),
    ("JSON object nested 5,000 deep", b'{"a":' * 5000 + b"1" + b"}" * 5000),
    ("object nested 40 deep inside a member", b'{"filterValues": ' + b'{"a":' * 40 + b'"x"' + b"}" * 41),
    ("5,000-digit integer", b'{"numResults": ' + b"9" * 5000 + b"}"),
    ("not JSON at all", b"not json"),
    ("truncated JSON", b'{"name": "x"'),
    ("a JSON array, not an object", b"[]"),
    ("a JSON string, not an object", b'"text"'),
    ("NaN", b'{"name": NaN}'),
    ("Infinity", b'{"numResults": Infinity}'),
    ("1e999 (a float that overflows)", b'{"numResults": 1e999}'),
    ("lone UTF-16 surrogate escape", b'{"name": "\\ud800"}'),
    ("UTF-8 byte-order mark before the JSON", b"\xef\xbb\xbf{}"),
    ("NUL bytes", b"\x00" * 16),
    ("null member", b'{"name": null}'),
    ("every member the wrong type", b'{"name": 5, "userId": [], "numResults": "ten", "tags": {}}'),
    ("a 1 MiB string member", b'{"name": "' + b"x" * (1 << 20) + b'"}'),
]

# Strings a caller may send in any string member.
ODD_STRINGS = [
    "",
    "x",
    "a" * 3000,
    "../../etc/passwd",
    "arn:aws:personalize:us-east-1:000000000000:dataset-group/fuzz",
    "arn:aws:personalize:us-east-1:000000000000:campaign/",
    "ü€😀",
    "\u0000",
    "' OR 1=1 --",
    "$(id)",
]
WRONG_TYPES = [None, 7, -1, 2**63, 1.5, "s", [], {}, True, [1, "a"], {"k": None}]


def random_value(shape, rng: random.Random, depth: int = 0):
    """A value for a botocore shape: usually of the right type, often odd, sometimes the wrong type."""
    if rng.random() < 0.08:
        return rng.choice(WRONG_TYPES)
    kind = shape.type_name
    if kind == "structure":
        if depth > 4:
            return {}
        required = set(shape.required_members)
        return {
            name: random_value(member, rng, depth + 1)
            for name, member in shape.members.items()
            if name in required or rng.random() < 0.4
        }
    if kind == "list":
        return [random_value(shape.member, rng, depth + 1) for _ in range(rng.choice([0, 1, 2, 30]))]
    if kind == "map":
        return {
            rng.choice(ODD_STRINGS[1:]) + str(n): random_value(shape.value, rng, depth + 1)
            for n in range(rng.choice([0, 1, 3]))
        }
    if kind == "string":
        if shape.enum and rng.random() < 0.7:
            return rng.choice(list(shape.enum))
        return rng.choice(ODD_STRINGS)
    if kind in ("integer", "long"):
        return rng.choice([0, 1, -1, 500, 2**31, 2**63 - 1])
    if kind in ("float", "double"):
        return rng.choice([0.0, -1.5, 0.5, 1e308])
    if kind == "boolean":
        return rng.choice([True, False])
    if kind == "timestamp":
        return rng.choice([0, 1700000000, -1])
    if kind == "blob":
        return b"\x00\xff"
    return None
