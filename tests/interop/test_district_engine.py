"""The district's S3 engine and its access control, for real (SeaweedFS's ``weed mini`` in
a namespace, boto3 clients, no mocks): the publisher writes the library, schools read it
and write only their own bucket, a school reads nothing of another school's bucket but
its status object, the WAN links are shaped, and a restart of the engine keeps what it stored."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError
from district_kit import LIBRARY, OPS, PUBLISHER, District, s3_config, school_bucket

from tests.conftest import require_root

MIB = 1024 * 1024
S1, S2 = "school1", "school2"
WAN_MBIT = 50.0

# Run in a school's namespace: a boto3 client of the identity whose credentials file is
# AWS_SHARED_CREDENTIALS_FILE, against ENDPOINT; `op` is what the test asks for.
SCHOOL_S3 = """
import json, os, sys, time
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                retries={"max_attempts": 1}, connect_timeout=3))
op, bucket, key = sys.argv[1:4]
t = time.monotonic()
try:
    if op == "get":
        n = len(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    else:
        n = int(sys.argv[4])
        s3.put_object(Bucket=bucket, Key=key, Body=os.urandom(n))
    print(json.dumps({"ok": True, "bytes": n, "seconds": time.monotonic() - t}))
except ClientError as e:
    print(json.dumps({"ok": False, "code": e.response["Error"]["Code"]}))
"""


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Iterator[District]:
    require_root()
    with District(tmp_path_factory.mktemp("district"), (S1, S2), wan_mbit=WAN_MBIT) as d:
        yield d


def code_of(call: Any) -> str:
    """The S3 error code ``call()`` is refused with (``AccessDenied``, ...)."""
    with pytest.raises(ClientError) as info:
        call()
    return str(info.value.response["Error"]["Code"])


def read(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def in_school(d: District, school: str, *args: str) -> dict[str, Any]:
    """SCHOOL_S3 with ``args`` in ``school``'s namespace, as that school, over its WAN."""
    env = dict(
        os.environ,
        ENDPOINT=d.endpoint,
        AWS_SHARED_CREDENTIALS_FILE=str(d.credentials_file(school)),
        AWS_CONFIG_FILE=os.devnull,
    )
    env.pop("AWS_ACCESS_KEY_ID", None)
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    proc = d.run_in(school, [sys.executable, "-c", SCHOOL_S3, *args], env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout))


def test_the_kit_runs_weed_from_the_venv_with_random_credentials(district: District) -> None:
    assert district.weed_argv[0] == str(Path(sys.executable).parent / "weed")
    keys = {district.credentials(i) for i in (OPS, PUBLISHER, S1, S2)}
    assert len(keys) == 4 and all(len(a) == 20 and len(s) >= 40 for a, s in keys)
    path = district.credentials_file(S1)
    assert path.stat().st_mode & 0o777 == 0o600
    assert f"aws_access_key_id = {district.credentials(S1)[0]}\n" in path.read_text()
    names = {b["Name"] for b in district.client(OPS).list_buckets()["Buckets"]}
    assert names == {LIBRARY, school_bucket(PUBLISHER), school_bucket(S1), school_bucket(S2)}


def test_the_publisher_writes_the_library_and_a_school_reads_it_over_its_wan(
    district: District,
) -> None:
    body = secrets.token_bytes(MIB)
    district.client(PUBLISHER).put_object(Bucket=LIBRARY, Key="manifests/a.json", Body=body)
    assert read(district.client(S1), LIBRARY, "manifests/a.json") == body
    listed = district.client(S2).list_objects_v2(Bucket=LIBRARY, Prefix="manifests/")
    assert [o["Key"] for o in listed["Contents"]] == ["manifests/a.json"]

    rx, tx = district.wan_rx_bytes(S1), district.wan_tx_bytes(S1)
    got = in_school(district, S1, "get", LIBRARY, "manifests/a.json")
    assert got["ok"] and got["bytes"] == MIB
    received = district.wan_rx_bytes(S1) - rx
    assert MIB <= received < MIB * 1.1, received
    assert district.wan_tx_bytes(S1) - tx < 200_000  # the request and TCP's acks


def test_a_school_cannot_write_or_delete_in_the_library(district: District) -> None:
    district.client(PUBLISHER).put_object(Bucket=LIBRARY, Key="chunks/c1", Body=b"chunk")
    s1 = district.client(S1)
    assert code_of(lambda: s1.put_object(Bucket=LIBRARY, Key="chunks/c2", Body=b"x")) == (
        "AccessDenied"
    )
    assert code_of(lambda: s1.delete_object(Bucket=LIBRARY, Key="chunks/c1")) == "AccessDenied"
    copy = {"Bucket": LIBRARY, "Key": "chunks/c1"}
    assert code_of(lambda: s1.copy_object(Bucket=LIBRARY, Key="c3", CopySource=copy)) == (
        "AccessDenied"
    )
    # DeleteObjects answers 200 as S3 does, the refusal per key in its Errors.
    answer = s1.delete_objects(Bucket=LIBRARY, Delete={"Objects": [{"Key": "chunks/c1"}]})
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("chunks/c1", "AccessDenied")]
    assert read(s1, LIBRARY, "chunks/c1") == b"chunk"
    # Over its WAN, as the school's appliance would try it: refused too.
    assert in_school(district, S1, "put", LIBRARY, "chunks/c4", "10") == {
        "ok": False,
        "code": "AccessDenied",
    }


def test_a_school_writes_its_own_bucket_and_no_other(district: District) -> None:
    s1 = district.client(S1)
    s1.put_object(Bucket=school_bucket(S1), Key="backups/pc1", Body=b"pc1")
    assert read(s1, school_bucket(S1), "backups/pc1") == b"pc1"
    s1.delete_object(Bucket=school_bucket(S1), Key="backups/pc1")  # Write is delete too
    assert code_of(lambda: s1.put_object(Bucket=school_bucket(S2), Key="x", Body=b"x")) == (
        "AccessDenied"
    )
    assert in_school(district, S1, "put", school_bucket(S1), "backups/pc2", "1000")["ok"]


def test_a_school_reads_another_schools_status_object_and_nothing_else(
    district: District,
) -> None:
    district.client(S2).put_object(Bucket=school_bucket(S2), Key="backups/pc9", Body=b"s2")
    district.client(S2).put_object(Bucket=school_bucket(S2), Key="status.json", Body=b"{}")
    s1, other = district.client(S1), school_bucket(S2)
    # "Read:school-school2/status.json*": that object, read only (the district view).
    assert read(s1, other, "status.json") == b"{}"
    assert code_of(lambda: s1.put_object(Bucket=other, Key="status.json", Body=b"x")) == (
        "AccessDenied"
    )
    assert code_of(lambda: s1.list_objects_v2(Bucket=other, Prefix="status")) == "AccessDenied"
    # Refused by SeaweedFS's rights (no right on the bucket), not hidden behind a 404.
    assert code_of(lambda: s1.get_object(Bucket=other, Key="backups/pc9")) == "AccessDenied"
    assert code_of(lambda: s1.list_objects_v2(Bucket=other)) == "AccessDenied"
    assert code_of(lambda: s1.head_object(Bucket=other, Key="backups/pc9")) == "403"
    # Rights come before lookups: what is not there is refused alike, nothing leaks.
    assert code_of(lambda: s1.get_object(Bucket=other, Key="no-such-key")) == "AccessDenied"
    assert code_of(lambda: s1.get_object(Bucket="no-such-bucket", Key="k")) == "AccessDenied"
    assert code_of(lambda: s1.get_object(Bucket=LIBRARY, Key="no-such-key")) == "NoSuchKey"
    copy = {"Bucket": other, "Key": "backups/pc9"}
    assert code_of(lambda: s1.copy_object(Bucket=school_bucket(S1), Key="x", CopySource=copy)) == (
        "AccessDenied"
    )
    # ListBuckets needs no right: it shows each identity the buckets it holds one on.
    assert {b["Name"] for b in s1.list_buckets()["Buckets"]} == {LIBRARY, school_bucket(S1)}
    assert in_school(district, S1, "get", other, "backups/pc9") == {
        "ok": False,
        "code": "AccessDenied",
    }


def test_only_ops_creates_buckets_and_a_wrong_secret_is_refused(district: District) -> None:
    # Creating a bucket takes Admin (or Admin:<that bucket>): the publisher has neither,
    # the kit's "ops" made them all.
    pub = district.client(PUBLISHER)
    assert code_of(lambda: pub.create_bucket(Bucket="rogue")) == "AccessDenied"
    assert code_of(lambda: district.client(S1).create_bucket(Bucket="rogue")) == "AccessDenied"
    assert code_of(lambda: pub.get_object(Bucket=school_bucket(S1), Key="x")) == "AccessDenied"
    forged = boto3.client(
        "s3",
        endpoint_url=district.host_endpoint,
        region_name="us-east-1",
        aws_access_key_id=district.credentials(S1)[0],
        aws_secret_access_key="not-the-secret-of-school1",
        config=s3_config(attempts=1),
    )
    assert code_of(lambda: forged.list_objects_v2(Bucket=LIBRARY)) == "SignatureDoesNotMatch"


def test_the_wan_links_are_shaped_both_ways(district: District) -> None:
    size = 2 * MIB
    district.client(PUBLISHER).put_object(Bucket=LIBRARY, Key="big", Body=os.urandom(size))
    floor = size * 8 / (WAN_MBIT * 1e6) * 0.8  # tbf lets a 64 kB burst through early
    got = in_school(district, S2, "get", LIBRARY, "big")
    assert got["ok"] and got["seconds"] >= floor, got
    sent = in_school(district, S2, "put", school_bucket(S2), "big", str(size))
    assert sent["ok"] and sent["seconds"] >= floor, sent


def test_a_cut_link_and_back(district: District) -> None:
    ping = ["ping", "-c", "1", "-W", "1", "10.84.0.1"]
    assert district.run_in(S1, ping).returncode == 0
    district.link_down(S1)
    try:
        assert district.run_in(S1, ping).returncode != 0
    finally:
        district.link_up(S1)
    deadline = time.monotonic() + 10
    while district.run_in(S1, ping).returncode != 0:  # the port forwards again at once
        assert time.monotonic() < deadline, "school1's link did not come back"


@pytest.mark.parametrize("hard", [False, True], ids=["stopped", "killed"])
def test_a_restart_of_the_engine_keeps_buckets_and_objects(district: District, hard: bool) -> None:
    body = secrets.token_bytes(100_000)
    district.client(PUBLISHER).put_object(Bucket=LIBRARY, Key=f"kept-{hard}", Body=body)
    district.stop_engine(hard=hard)
    with pytest.raises(BotoCoreError):  # the relay finds nothing listening: it hangs up
        district.client(S1, attempts=1).list_buckets()
    district.start_engine()
    assert read(district.client(S1), LIBRARY, f"kept-{hard}") == body
    names = {b["Name"] for b in district.client(OPS).list_buckets()["Buckets"]}
    assert names == {LIBRARY, school_bucket(PUBLISHER), school_bucket(S1), school_bucket(S2)}
