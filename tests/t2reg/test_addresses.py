"""What counts as this machine only, and the rule both servers (`t2reg serve`, `t2reg ui`) keep: an address
other machines reach needs a key."""

import pytest

from t2reg.addresses import check_bind, is_loopback
from t2reg.errors import InvalidInputError, UnsafeBindError

KEY = "s3cret-key"


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                           ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                           ("::", False), ("192.168.1.10", False), ("ui.example.org", False)])
def test_what_counts_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_the_check_refuses_an_open_address_without_a_key_and_a_blank_key():
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", KEY)
    with pytest.raises(UnsafeBindError, match="'0.0.0.0' is reachable from other machines: give an api_key"):
        check_bind("0.0.0.0", None)
    with pytest.raises(InvalidInputError, match="api_key must not be empty"):
        check_bind("127.0.0.1", "  ")
