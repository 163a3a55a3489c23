"""Signed image URLs: what verifies and what does not."""

from __future__ import annotations

from pixelmesh.gateway.signing import IMG_PREFIX, ImageAddress, Verdict, signature, signed_path, verify

NEW, OLD = b"new-key-0123456789abcdef", b"old-key-0123456789abcdef"
SOURCE = "ab" * 32


def address(variant: str = "small", expires: int | None = None) -> ImageAddress:
    return ImageAddress("shop", "thumbs", variant, SOURCE, expires)


def test_a_url_signed_with_any_accepted_key_verifies():
    for key in (NEW, OLD):
        assert verify([NEW, OLD], signature(key, address()), address(), now=0) is Verdict.VALID


def test_a_dropped_key_or_another_variant_does_not_verify():
    assert verify([NEW], signature(OLD, address()), address(), now=0) is Verdict.BAD_SIGNATURE
    assert verify([NEW], signature(NEW, address("small")), address("large"), now=0) is Verdict.BAD_SIGNATURE


def test_expiry_is_signed_and_enforced():
    signed = signature(NEW, address(expires=1000))
    assert verify([NEW], signed, address(expires=1000), now=999) is Verdict.VALID
    assert verify([NEW], signed, address(expires=1000), now=1001) is Verdict.EXPIRED
    assert verify([NEW], signed, address(expires=5000), now=1001) is Verdict.BAD_SIGNATURE
    assert verify([NEW], signed, address(), now=0) is Verdict.BAD_SIGNATURE


def test_garbage_signatures_and_no_keys_are_refused_without_errors():
    for presented in ("", "x" * 43, "é" * 10, signature(NEW, address()) + "="):
        assert verify([NEW], presented, address(), now=0) is Verdict.BAD_SIGNATURE
    assert verify([], signature(NEW, address()), address(), now=0) is Verdict.BAD_SIGNATURE


def test_the_signed_path_carries_the_signature_and_the_expiry():
    path = signed_path(NEW, address(expires=1234))
    assert path.startswith(IMG_PREFIX + "/")
    assert path.endswith(f"/shop/thumbs/small/{SOURCE}?expires=1234")
    presented = path.split("/")[3]
    assert len(presented) == 43
    assert verify([NEW], presented, address(expires=1234), now=0) is Verdict.VALID
