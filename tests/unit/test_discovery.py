"""zk:// and host:port parsing, leader choice and MasterInfo reading (no ZooKeeper)."""

import json

import pytest

from mesonb.discovery import (
    ZkUrl,
    choose_leader,
    is_zk,
    master_address,
    parse_master,
    parse_zk_url,
    resolve_master,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("zk://h1:2181/mesonb", ZkUrl("h1:2181", "/mesonb")),
        ("zk://h1:2181,h2:2182/mesonb", ZkUrl("h1:2181,h2:2182", "/mesonb")),
        ("zoo://h1:2181/a/b/", ZkUrl("h1:2181", "/a/b")),
        ("zk://user:pass@h1:2181,h2/mesos", ZkUrl("h1:2181,h2", "/mesos", "user:pass")),
        ("ZK://h1/mesos", ZkUrl("h1", "/mesos")),
    ],
)
def test_parse_zk_url(url, expected):
    assert parse_zk_url(url) == expected
    assert is_zk(url)


def test_zk_url_auth_data_and_str():
    url = parse_zk_url("zk://u:p@h1:2181/m")
    assert url.auth_data == [("digest", "u:p")]
    assert str(url) == "zk://u:p@h1:2181/m"
    assert parse_zk_url("zk://h:1/m").auth_data is None


@pytest.mark.parametrize(
    "url",
    ["zk://h1:2181", "zk://h1:2181/", "zk://h1:x/m", "zk://h1:2181,,h2/m", "zk://user@h/m",
     "http://h:2181/m", "zk://h1:70000/m"],
)
def test_parse_zk_url_rejects(url):
    with pytest.raises(ValueError):
        parse_zk_url(url)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("10.0.0.5:5050", "10.0.0.5:5050"), ("host", "host:5050"), (" h:1 ", "h:1"),
     ("[::1]:5051", "[::1]:5051")],
)
def test_parse_master(spec, expected):
    assert parse_master(spec) == expected
    assert not is_zk(spec)


@pytest.mark.parametrize("spec", ["http://h:5050", "h:port", "::1:5050", ":5050", "h:0"])
def test_parse_master_rejects(spec):
    with pytest.raises(ValueError):
        parse_master(spec)


def test_choose_leader_lowest_sequence_ignoring_others():
    children = ["json.info_0000000012", "log_replicas", "json.info_0000000003",
                "info_0000000001", "json.info_x", "json.info_0000000010"]
    assert choose_leader(children) == "json.info_0000000003"
    assert choose_leader(["log_replicas"]) is None
    assert choose_leader([]) is None


def test_master_address_reads_address_ip_and_port():
    info = {"id": "x", "ip": 16777343, "port": 5050, "hostname": "ignored",
            "address": {"ip": "10.1.2.3", "port": 5051, "hostname": "ignored"}}
    assert master_address(json.dumps(info).encode()) == "10.1.2.3:5051"
    with pytest.raises(ValueError):
        master_address(b'{"hostname": "h"}')


async def test_resolve_master_host_port_unchanged():
    assert await resolve_master("127.0.0.1:5050") == "127.0.0.1:5050"
    with pytest.raises(ValueError):
        await resolve_master("zk://h1:2181")


@pytest.mark.parametrize(("location", "expected"), [
    ("//10.0.0.2:5051/api/v1/scheduler", "10.0.0.2:5051"),
    ("http://h:5052/master/state", "h:5052"),
    ("h:5053", "h:5053"),
    ("//[::1]:5054/api/v1", "[::1]:5054"),
    ("//h/api/v1", "h:5050"),
])
def test_redirected_master_reads_a_standbys_location(location, expected):
    from mesonb.discovery import redirected_master

    assert redirected_master(location) == expected
