"""Rendered boot scripts, pinned by golden files (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.boot.decide import BootSpec, JobFacts
from appliance.boot.render import (
    grub_device,
    kernel_cmdline,
    render_grub,
    render_grub_bootstrap,
    render_ipxe,
)

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "boot"
BASE = "http://10.0.0.1:8080"
MAC = "52:54:00:12:34:56"
TOKEN = "0123456789abcdef" * 4
SPECS = {
    "restore": BootSpec("env", MAC, "pc-01", job=JobFacts(42, "restore", TOKEN)),
    "capture": BootSpec("env", MAC, "pc-01", job=JobFacts(43, "capture", TOKEN)),
    "local": BootSpec("local", MAC, "pc-01"),
    "register": BootSpec("register", MAC),
    "silent": None,
}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; UPDATE_GOLDEN=1 if intended"


@pytest.mark.parametrize("case", sorted(SPECS))
def test_ipxe_golden(case):
    check_golden(f"{case}.ipxe", render_ipxe(SPECS[case], BASE))


@pytest.mark.parametrize("case", sorted(SPECS))
def test_grub_golden(case):
    check_golden(f"{case}.grub.cfg", render_grub(SPECS[case], BASE))


def test_grub_bootstrap_golden():
    check_golden("bootstrap.grub.cfg", render_grub_bootstrap(BASE))


def test_cmdline_contract():
    words = kernel_cmdline(SPECS["restore"], BASE + "/").split()
    assert words == [
        "initrd=initrd.img",
        f"slate.url={BASE}",
        "slate.job=42",
        f"slate.token={TOKEN}",
        f"slate.mac={MAC}",
        "console=ttyS0,115200",
        "console=tty0",
    ]
    assert "initrd=" not in kernel_cmdline(SPECS["restore"], BASE, efi_initrd=False)
    with pytest.raises(ValueError):
        kernel_cmdline(SPECS["local"], BASE)


def test_every_ipxe_script_is_a_script():
    for spec in SPECS.values():
        text = render_ipxe(spec, BASE)
        assert text.startswith("#!ipxe\n") and text.endswith("\n")


def test_grub_device():
    assert grub_device("http://10.0.0.1:8080") == "(http,10.0.0.1:8080)"
    assert grub_device("http://10.0.0.1") == "(http,10.0.0.1)"
