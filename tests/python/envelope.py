"""Stream's error envelope, as every refusal must answer it, and what its message must never show."""
import re

ENVELOPE_FIELDS = {"code", "message", "StatusCode", "duration", "more_info"}
# Store keys and Rust internals.
LEAKS = ("#", "serde", "expected struct", "unknown variant", "Json(Error", "storage failure")
STORE_WORDS = re.compile(r"\b(pk|sk)\b")


def assert_no_leak(message, extra=()):
    for leak in (*LEAKS, *extra):
        assert leak not in message, f"error message leaks {leak!r}: {message}"
    assert not STORE_WORDS.search(message), f"error message names a store key: {message}"


def assert_error(resp, status, code=None, extra_leaks=()):
    """A raw response that is a refusal in Stream's envelope; returns its body."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert ENVELOPE_FIELDS <= set(body), body
    assert body["StatusCode"] == status, body
    if code is not None:
        assert body["code"] == code, body
    assert_no_leak(body["message"], extra_leaks)
    return body
