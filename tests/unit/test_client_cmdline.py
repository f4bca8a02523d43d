"""slate.* settings from a kernel command line, and the partclone domain map parser."""

from __future__ import annotations

import pytest

from appliance.errors import UsageError
from bootimage.client.capture import parse_domain
from bootimage.client.cmdline import parse_args, parse_cmdline, settings_from

CMDLINE = (
    "initrd=initrd.img slate.url=http://10.0.0.1:8080/ slate.job=12 slate.token=abc "
    "slate.mac=52:54:00:12:34:56 console=ttyS0,115200 console=tty0 quiet\n"
)


def test_cmdline_settings() -> None:
    s = settings_from(parse_cmdline(CMDLINE))
    assert (s.url, s.job, s.token, s.mac) == (
        "http://10.0.0.1:8080",
        "12",
        "abc",
        "52:54:00:12:34:56",
    )
    assert s.disk is None and s.after is None and s.workers == 8


def test_missing_settings_name_what_is_missing() -> None:
    with pytest.raises(UsageError, match=r"slate\.job, slate\.token"):
        settings_from(parse_cmdline("slate.url=http://x quiet"))


def test_flags_override_a_cmdline_file(tmp_path) -> None:
    path = tmp_path / "cmdline"
    path.write_text(CMDLINE)
    s = parse_args(["--cmdline", str(path), "--disk", "/tmp/d.img", "--after", "none"])
    assert s.disk == "/tmp/d.img" and s.after == "none" and s.job == "12"


def test_domain_map_used_ranges() -> None:
    text = """# Domain logfile created by partclone
# current_pos  current_status
0x01500000     ?
#      pos        size  status
0x00100000  0x0016D000  +
0x0026D000  0x00693400  ?
0x00900400  0x00128400  +
"""
    assert parse_domain(text) == [(0x100000, 0x16D000), (0x900400, 0x128400)]


def test_console_streams_add_every_console_but_the_last(tmp_path) -> None:
    import io

    from bootimage.client.progress import Tee, console_streams

    primary = io.StringIO()
    assert console_streams("quiet console=tty0", primary) is primary
    tee = console_streams("console=null,115200 console=tty0", primary)
    assert isinstance(tee, Tee) and len(tee.streams) == 2
    tee.write("hello\n")
    assert primary.getvalue() == "hello\n"
