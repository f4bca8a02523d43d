"""``/boot/<mac>.ipxe`` and ``/boot/<mac>.grub`` (the boot decision, rendered) and
``/bootenv/`` (kernel and initramfs of the boot environment)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from appliance.boot.decide import Machine
from appliance.boot.plan import plan_boot
from appliance.boot.render import render_grub, render_ipxe
from appliance.errors import UsageError
from appliance.http.auth import appliance
from appliance.http.files import send_path
from appliance.http.listeners import client_api_url, served_bootenv
from appliance.machines import normalize_mac, timeline

bp = Blueprint("boot", __name__)
BOOTENV_FILES = frozenset({"vmlinuz", "initrd.img"})
# UEFI HTTP boot firmware loads its first program over HTTP instead of TFTP: the same
# iPXE binaries `slate serve` copies into the TFTP root, by a fixed list of names.
HTTP_BOOT_FILES = frozenset({"snponly.efi", "ipxe.efi"})
FIRMWARE_BY_PLATFORM = {"pcbios": "bios", "efi": "uefi"}


@bp.get("/boot/<name>")
def boot_script(name: str) -> Response:
    stem, dot, kind = name.rpartition(".")
    if not dot or kind not in ("ipxe", "grub"):
        return Response("not found\n", 404, mimetype="text/plain")
    try:
        mac = normalize_mac(stem)
    except UsageError as exc:
        return Response(f"{exc.message}\n", 400, mimetype="text/plain")
    # iPXE may add ?platform=${platform}; grub.cfg is only fetched on the Secure Boot path.
    # Otherwise the firmware stays as DHCP saw it ("" keeps the recorded value).
    firmware = FIRMWARE_BY_PLATFORM.get(request.args.get("platform", ""), "")
    if kind == "grub":
        firmware = "uefi"
    app = appliance()
    machine = Machine(mac=mac, firmware=firmware, ip=request.remote_addr)
    spec = plan_boot(app.jobs, machine, app.unknown_policy)
    base = request.host_url.rstrip("/")
    api = client_api_url(base, current_app.config)
    if kind == "grub":
        return Response(render_grub(spec, base, api), mimetype="text/plain")
    return Response(render_ipxe(spec, base, api), mimetype="text/plain")


@bp.route("/bootenv/<name>", methods=["GET", "HEAD"])
def bootenv(name: str) -> Response:
    if name not in BOOTENV_FILES:
        return Response("not found\n", 404, mimetype="text/plain")
    path = served_bootenv(appliance().layout, name, current_app.config)
    if request.method == "GET":
        timeline.bootenv_fetched(appliance().db(), name, request.remote_addr)
    return send_path(path, request, "application/octet-stream")


@bp.route("/ipxe/<name>", methods=["GET", "HEAD"])
def ipxe_binary(name: str) -> Response:
    if name not in HTTP_BOOT_FILES:
        return Response("not found\n", 404, mimetype="text/plain")
    return send_path(appliance().layout.tftp_root / name, request, "application/efi")
