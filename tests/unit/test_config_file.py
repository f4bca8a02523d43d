"""The configuration file of `slate serve` (/etc/slate/slate.conf): KEY=value lines for
the settings table, overridden by flags and SLATE_* variables; bad lines refused by line
and key; the commented default file documents every key (issue 27)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from appliance import settings as sm
from appliance.errors import UsageError


def parse(argv: list[str], env: dict[str, str], config: Path) -> sm.Settings:
    parser = argparse.ArgumentParser()
    sm.add_arguments(parser)
    return sm.from_sources(parser.parse_args(argv), env, sm.read_config(config))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slate.conf"
    path.write_text(text)
    return path


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    conf = write(tmp_path, "# the school's server\n\nINTERFACE=eth1\nHTTP_PORT=8080\n"
                 "  tftp_port = 6969  \nDHCP='full'\nADDRESS=10.0.0.1/16\nNO_DNS=yes\n"
                 "DOMAIN=\n")  # fmt: skip
    s = parse([], {}, conf)
    assert (s.interface, s.http_port, s.tftp_port, s.dhcp) == ("eth1", 8080, 6969, "full")
    assert (s.address, s.prefix, s.no_dns, s.domain) == ("10.0.0.1", 16, True, "slate.lan")
    s = parse(["--http-port", "81"], {"SLATE_HTTP_PORT": "82", "SLATE_TFTP_PORT": "70"}, conf)
    assert (s.http_port, s.tftp_port, s.interface) == (81, 70, "eth1")


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("HTTP_PORT=80\nlisten 8443\n", "line 2: 'listen 8443' is not KEY=value",
         "each line sets one setting, e.g. HTTP_PORT=80 (# starts a comment)"),
        ("HTTP_PROT=80\n", "line 1: unknown key HTTP_PROT", "did you mean HTTP_PORT?"),
        ("WIBBLE=1\n", "line 1: unknown key WIBBLE", "`slate config default` lists every key"),
        ("DHCP=full\n\nDHCP=proxy\n", "line 3: DHCP is set twice (first on line 1)",
         "keep one of the two lines"),
        ("HTTP_PORT=99999\n", "line 1 (HTTP_PORT): '99999' is not valid (port 99999 is out"
         " of range)", "`slate config default` documents HTTP_PORT"),
        ("DHCP=maybe\n", "line 1 (DHCP): 'maybe' is not one of proxy, full, off",
         "use one of: proxy, full, off"),
        ("=1\n", "line 1: '=1' is not KEY=value",
         "each line sets one setting, e.g. HTTP_PORT=80 (# starts a comment)"),
    ],
)  # fmt: skip
def test_a_bad_line_is_refused_naming_line_and_key(
    tmp_path: Path, text: str, message: str, hint: str
) -> None:
    conf = write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        sm.read_config(conf)
    assert caught.value.message == f"{conf}, {message}"
    assert caught.value.hint == hint


def test_the_default_file_documents_every_key_at_its_default(tmp_path: Path) -> None:
    text = sm.default_config("9.9")
    keys = [line[1:].split("=")[0] for line in text.splitlines() if line.startswith("#") and
            "=" in line and line[1:].split("=")[0].isupper()]  # fmt: skip
    assert keys == [s.key for s in sm.TABLE]
    assert "\n# Written by `slate config default` (slate 9.9).\n" in text
    assert (
        "\n# HTTP port (boot scripts, boot environment, image chunks)\n"
        "# flag --http-port, environment SLATE_HTTP_PORT\n#HTTP_PORT=80\n"
    ) in text
    assert "\n# flag --interface, environment SLATE_INTERFACE; required\n#INTERFACE=\n" in text
    assert "\n# flag --no-dns, environment SLATE_NO_DNS\n#NO_DNS=no\n" in text
    assert "%%" not in text and all(len(line) <= 88 for line in text.splitlines())
    # Every line taken out of its comment: the defaults, exactly.
    uncommented = write(tmp_path, "".join(
        line[1:] + "\n" if line[1:].split("=")[0] in keys else line + "\n"
        for line in text.splitlines()
    ))  # fmt: skip
    assert sm.from_sources(None, {}, sm.read_config(uncommented)) == sm.Settings()


def test_which_file_serve_reads(tmp_path: Path) -> None:
    assert sm.config_path("/x/slate.conf", {"SLATE_CONFIG": "/y"}) == Path("/x/slate.conf")
    assert sm.config_path(None, {"SLATE_CONFIG": "/y"}) == Path("/y")
    expected = sm.DEFAULT_CONFIG if sm.DEFAULT_CONFIG.is_file() else None
    assert sm.config_path(None, {}) == expected


def test_slate_config_commands(slate, tmp_path: Path) -> None:
    out = slate("config", "default", check=True).stdout
    assert out == sm.default_config(__import__("appliance").__version__)
    conf = write(tmp_path, "INTERFACE=eth1\nHTTP_PORT=8080\n")
    data = json.loads(slate("config", "check", str(conf), "--json", check=True).stdout)
    assert data["from_file"] == ["http_port", "interface"]
    assert (data["settings"]["http_port"], data["settings"]["interface"]) == (8080, "eth1")
    bad = write(tmp_path, "HTTP_PORT=8080\nHTTP_PROT=1\n")
    proc = slate("config", "check", str(bad))
    assert proc.returncode == 1
    assert proc.stderr == (
        f"slate: error: {bad}, line 2: unknown key HTTP_PROT\nhint: did you mean HTTP_PORT?\n"
    )
    # `slate serve` refuses it before anything else (the interface is never looked at).
    proc = slate("serve", "--config", str(bad), "--interface", "no-such-if0")
    assert proc.returncode == 1 and "line 2: unknown key HTTP_PROT" in proc.stderr
    proc = slate("serve", "--config", str(tmp_path / "absent.conf"))
    assert proc.returncode == 1
    assert f"cannot read the configuration file {tmp_path / 'absent.conf'}" in proc.stderr
