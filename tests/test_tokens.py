"""Signed links: purpose-bound, tamper-evident, expiring, and surviving a key rotation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from leadcapture import clock
from leadcapture.errors import TokenExpired, TokenInvalid
from leadcapture.tokens import Purpose, TokenService


def test_a_token_opens_only_its_own_purpose() -> None:
    service = TokenService(["key-one-0123456789"])
    token = service.make(Purpose.CONFIRM, {"s": 1, "sub": 2})
    assert service.read(Purpose.CONFIRM, token) == {"s": 1, "sub": 2}
    with pytest.raises(TokenInvalid):
        service.read(Purpose.DOWNLOAD, token)


OTHER_SIGNATURE = "A" * 27  # the length of a real signature, but not this token's


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.rsplit(".", 1)[0] + "." + OTHER_SIGNATURE,  # signature swapped
        lambda t: "e" + t[1:] if t[0] != "e" else "f" + t[1:],  # payload changed
        lambda t: t.split(".")[0],  # signature cut off
        lambda t: "",
        lambda t: "." * 2000,
    ],
)
def test_tampering_is_detected(mangle: Callable[[str], str]) -> None:
    service = TokenService(["key-one-0123456789"])
    token = service.make(Purpose.CONFIRM, {"s": 1})
    with pytest.raises(TokenInvalid):
        service.read(Purpose.CONFIRM, mangle(token))


def test_expiry_follows_the_app_clock_and_keeps_the_payload(frozen_clock: object) -> None:
    service = TokenService(["key-one-0123456789"])
    token = service.make(Purpose.DOWNLOAD, {"s": 1, "r": 2})
    clock.advance(timedelta(days=29))
    assert service.read(Purpose.DOWNLOAD, token)["r"] == 2
    clock.advance(timedelta(days=2))
    with pytest.raises(TokenExpired) as expired:
        service.read(Purpose.DOWNLOAD, token)
    assert expired.value.payload == {"s": 1, "r": 2}


def test_unsubscribe_links_do_not_expire(frozen_clock: object) -> None:
    service = TokenService(["key-one-0123456789"])
    token = service.make(Purpose.UNSUBSCRIBE, {"s": 1})
    clock.advance(timedelta(days=3650))
    assert service.read(Purpose.UNSUBSCRIBE, token) == {"s": 1}


def test_rotation_signs_with_the_newest_key_and_accepts_the_old_ones() -> None:
    old = TokenService(["old-key-0123456789"])
    rotated = TokenService(["new-key-0123456789", "old-key-0123456789"])
    old_token = old.make(Purpose.CONFIRM, {"s": 1})
    assert rotated.read(Purpose.CONFIRM, old_token) == {"s": 1}
    new_token = rotated.make(Purpose.CONFIRM, {"s": 2})
    assert TokenService(["new-key-0123456789"]).read(Purpose.CONFIRM, new_token) == {"s": 2}
    with pytest.raises(TokenInvalid):
        old.read(Purpose.CONFIRM, new_token)
