"""Settings: one table -> flags and SLATE_* variables, checked values."""

from __future__ import annotations

import argparse

import pytest

from appliance import settings as sm
from appliance.errors import UsageError


def parse(argv: list[str], env: dict[str, str] | None = None) -> sm.Settings:
    parser = argparse.ArgumentParser()
    sm.add_arguments(parser)
    return sm.from_sources(parser.parse_args(argv), env or {})


def test_every_setting_is_a_field_with_flag_and_env() -> None:
    names = {f for f in sm.as_dict(sm.Settings())}
    for s in sm.TABLE:
        assert s.name in names
        assert s.flag.startswith("--") and s.env.startswith("SLATE_")


def test_flags_win_over_environment_over_defaults() -> None:
    s = parse(["--http-port", "8080"], {"SLATE_HTTP_PORT": "9090", "SLATE_TFTP_PORT": "6969"})
    assert (s.http_port, s.tftp_port, s.dhcp) == (8080, 6969, "proxy")
    s = parse(["--no-dns", "--address", "10.0.0.1/16"], {"SLATE_DHCP": "full"})
    assert s.no_dns and s.dhcp == "full" and s.address == "10.0.0.1" and s.prefix == 16
    assert not s.dns_enabled


def test_bad_values_are_usage_errors_naming_the_source() -> None:
    with pytest.raises(UsageError, match="--http-port"):
        parse(["--http-port", "99999"])
    with pytest.raises(UsageError, match="SLATE_POOL"):
        parse([], {"SLATE_POOL": "10.0.0.9-10.0.0.1"})
    with pytest.raises(UsageError, match="SLATE_DHCP"):
        parse([], {"SLATE_DHCP": "maybe"})


def test_derived_values() -> None:
    s = sm.Settings(address="10.77.0.1", prefix=24, dhcp="full")
    assert s.unknown_policy == "local" and s.dns_enabled
    assert [str(a) for a in s.pool_range] == ["10.77.0.128", "10.77.0.254"]
    assert sm.Settings(dhcp="proxy").unknown_policy == "silent"
    assert sm.Settings(address="10.0.0.1", http_port=8080).url == "http://10.0.0.1:8080"
    sm.check(s)
    with pytest.raises(UsageError, match="contains the appliance"):
        sm.check(sm.Settings(address="10.77.0.150", prefix=24, dhcp="full"))
    with pytest.raises(UsageError, match="not inside"):
        sm.check(sm.Settings(address="10.77.0.1", prefix=24, dhcp="full", pool="10.8.0.1-10.8.0.9"))


def test_loopback_resolves() -> None:
    s = sm.resolve(sm.Settings(interface="lo", address="127.0.0.1", dhcp="off"))
    assert s.prefix == 8
    with pytest.raises(UsageError, match="does not exist"):
        sm.resolve(sm.Settings(interface="nosuchif0"))
    with pytest.raises(UsageError, match="no network interface"):
        sm.resolve(sm.Settings())
