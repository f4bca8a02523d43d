"""Render a boot spec per firmware path: an iPXE script, or a grub.cfg for the Secure
Boot chain (signed shim → signed grub → signed kernel; unsigned iPXE cannot run there).

Pure text functions; golden tests in tests/unit/golden/boot/ pin their output.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from appliance.boot.decide import BootSpec

KERNEL = "vmlinuz"
INITRD = "initrd.img"
CONSOLES = "console=ttyS0,115200 console=tty0"


def kernel_cmdline(
    spec: BootSpec, base_url: str, *, efi_initrd: bool = True, api_url: str | None = None
) -> str:
    """The restore environment's kernel command line (contract §2): ``slate.url`` for
    chunks, ``slate.api`` for the client channel over TLS when the appliance runs it.

    ``initrd=initrd.img``: Debian's iPXE in EFI mode passes the initramfs only by that
    name; the kernel ignores the word otherwise, so iPXE scripts always carry it.
    """
    if spec.job is None:
        raise ValueError("only a boot spec with a job has a kernel command line")
    words = [f"initrd={INITRD}"] if efi_initrd else []
    words += [
        f"slate.url={base_url.rstrip('/')}",
        *([f"slate.api={api_url.rstrip('/')}"] if api_url else []),
        f"slate.job={spec.job.id}",
        f"slate.token={spec.job.token}",
        f"slate.mac={spec.mac}",
        CONSOLES,
    ]
    return " ".join(words)


def _ipxe_local(title: str) -> list[str]:
    # BIOS: hand over to the first hard disk.  UEFI: return to the firmware with an
    # error (`exit 1`), so it tries its next boot option, the local disk; a plain `exit`
    # reports success and OVMF (like many real firmwares) then opens its boot menu.
    return [
        f"echo {title}",
        "iseq ${platform} efi && goto slate_exit ||",
        "sanboot --no-describe --drive 0x80 ||",
        ":slate_exit",
        "exit 1",
    ]


def render_ipxe(spec: BootSpec | None, base_url: str, api_url: str | None = None) -> str:
    """The iPXE script for ``spec`` (None = silent: leave the machine to its firmware)."""
    base = base_url.rstrip("/")
    if spec is None:
        lines = ["# Slate: not answering for this machine", "exit 1"]
    elif spec.kind == "env" and spec.job is not None:
        cmdline = kernel_cmdline(spec, base, api_url=api_url)
        lines = [
            f"# Slate: {spec.job.action} job {spec.job.id} for {spec.name or spec.mac}",
            f"echo Slate: {spec.job.action} job {spec.job.id} for {spec.name or spec.mac}",
            f"kernel {base}/bootenv/{KERNEL} {cmdline} || goto slate_failed",
            f"initrd {base}/bootenv/{INITRD} || goto slate_failed",
            "boot || goto slate_failed",
            ":slate_failed",
            "echo Slate: could not load the boot environment; asking again in 10 seconds",
            "sleep 10",
            f"chain --replace --autofree {base}/boot/{spec.mac}.ipxe",
        ]
    elif spec.kind == "register":
        lines = [
            f"menu Slate: this machine ({spec.mac}) is not registered",
            # No '--' in item text: iPXE would parse it as an option of `item`.
            "item --gap Register it in the Slate console or with: slate host add MAC",
            "item local Boot the local disk",
            "item retry Ask the appliance again",
            "choose --timeout 30000 --default local slate_choice || goto local",
            "goto ${slate_choice}",
            ":retry",
            f"chain --replace --autofree {base}/boot/{spec.mac}.ipxe",
            ":local",
            *_ipxe_local("Slate: booting the local disk"),
        ]
    else:
        title = f"Slate: {spec.name or spec.mac} boots its local disk"
        lines = [f"# {title}", *_ipxe_local(title)]
    return "#!ipxe\n" + "\n".join(lines) + "\n"


def grub_device(base_url: str) -> str:
    """``http://10.0.0.1:8080`` → ``(http,10.0.0.1:8080)``: grub's http device name."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    return f"(http,{host}:{parts.port})" if parts.port else f"(http,{host})"


def render_grub(spec: BootSpec | None, base_url: str, api_url: str | None = None) -> str:
    """grub.cfg for the Secure Boot chain: Debian's signed kernel + our initramfs."""
    dev = grub_device(base_url)
    head = ["set timeout=0", "set default=0"]
    if spec is not None and spec.kind == "env" and spec.job is not None:
        cmdline = kernel_cmdline(spec, base_url, efi_initrd=False, api_url=api_url)
        title = f"Slate: {spec.job.action} job {spec.job.id} for {spec.name or spec.mac}"
        body = [
            f'menuentry "{title}" {{',
            f"  echo '{title}'",
            f"  linux {dev}/bootenv/{KERNEL} {cmdline}",
            f"  initrd {dev}/bootenv/{INITRD}",
            "}",
        ]
    elif spec is not None and spec.kind == "register":
        head = ["set timeout=30", "set default=0"]
        body = [
            f'menuentry "Not registered ({spec.mac}): boot the local disk" {{',
            "  exit",
            "}",
        ]
    else:
        who = "not answering" if spec is None else f"{spec.name or spec.mac}: local disk"
        body = [f'menuentry "Slate: {who}" {{', "  exit", "}"]
    return "\n".join(head + body) + "\n"


def render_grub_bootstrap(base_url: str) -> str:
    """The static ``grub/grub.cfg`` on TFTP: fetch this machine's grub.cfg over HTTP."""
    return (
        "# Slate: ask the appliance what this machine boots\n"
        f"source {grub_device(base_url)}/boot/${{net_default_mac}}.grub\n"
    )
