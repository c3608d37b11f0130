"""The resource and retry keywords of ``submit``/``run``, checked before anything is sent:
clear errors that name the argument, and the amounts Mesos gets."""

import math

import pytest

from mesonb.client.sizes import check_retries, parse_size, resource_scalars


def test_amounts_in_mb_and_what_is_left_out():
    assert resource_scalars(0.2, "1GB", None, None) == {"cpus": 0.2, "mem": 1024.0}
    assert resource_scalars(1, 64, 0, 0) == {"cpus": 1.0, "mem": 64.0}  # disk=0, gpus=0: none
    assert resource_scalars(2, "512MiB", "1GB", 1) == {"cpus": 2.0, "mem": 512.0,
                                                        "disk": 1024.0, "gpus": 1.0}
    assert resource_scalars(0.5, 64, None, 2.0)["gpus"] == 2.0


@pytest.mark.parametrize(("keywords", "error", "match"), [
    ({"cpus": 0}, ValueError, "cpus: expected a positive"),
    ({"cpus": -1}, ValueError, "cpus: -1 is negative"),
    ({"cpus": math.inf}, ValueError, "cpus: inf is not a finite"),
    ({"cpus": math.nan}, ValueError, "cpus: nan is not a finite"),
    ({"cpus": 0.0001}, ValueError, "cpus: .* less than the smallest"),
    ({"cpus": 1e300}, ValueError, "cpus: .* more than the largest"),
    ({"cpus": "1"}, TypeError, "cpus: expected a positive number of CPUs, not str '1'"),
    ({"cpus": True}, TypeError, "cpus"),
    ({"cpus": None}, TypeError, "cpus"),
    ({"mem": 0}, ValueError, "mem: 0 MB means no memory limit at all"),
    ({"mem": "0"}, ValueError, "mem: 0 MB means no memory limit at all"),
    ({"mem": "0GB"}, ValueError, "mem: 0 MB"),
    ({"mem": math.inf}, ValueError, "mem: inf MB must be a finite"),
    ({"mem": math.nan}, ValueError, "mem: nan MB must be a finite"),
    ({"mem": "1e400"}, ValueError, "mem: '1e400' is not a finite size"),
    ({"mem": "1e300TB"}, ValueError, "mem: .* more than the largest"),
    ({"mem": "1B"}, ValueError, "mem: .* less than the smallest"),
    ({"mem": -1}, ValueError, "mem: -1 MB must be"),
    ({"mem": "lots"}, ValueError, "mem: cannot read 'lots'"),
    ({"disk": -1}, ValueError, "disk"),
    ({"disk": math.inf}, ValueError, "disk"),
    ({"disk": "x"}, ValueError, "disk"),
    ({"gpus": "x"}, TypeError, "gpus: expected a whole number of GPUs, not str 'x'"),
    ({"gpus": "1"}, TypeError, "gpus"),
    ({"gpus": -1}, ValueError, "gpus: -1 is negative"),
    ({"gpus": 0.5}, ValueError, "gpus: 0.5 is not a whole number"),
    ({"gpus": math.inf}, ValueError, "gpus: inf is not a finite"),
    ({"gpus": math.nan}, ValueError, "gpus: nan is not a finite"),
    ({"gpus": False}, TypeError, "gpus"),
])
def test_bad_resources_raise_errors_naming_the_argument(keywords, error, match):
    arguments = {"cpus": 0.2, "mem": "1GB", "disk": None, "gpus": None, **keywords}
    with pytest.raises(error, match=match):
        resource_scalars(**arguments)


def test_retries():
    assert check_retries(0) == 0 and check_retries(3) == 3
    with pytest.raises(ValueError, match="retries: expected 0 or more, not -1"):
        check_retries(-1)
    for bad in ("2", 1.0, None, True):
        with pytest.raises(TypeError, match="retries: expected a whole number"):
            check_retries(bad)


def test_numpy_numbers_are_numbers():
    np = pytest.importorskip("numpy")
    assert resource_scalars(np.float64(0.5), np.int64(64), None, np.int64(1)) == {
        "cpus": 0.5, "mem": 64.0, "gpus": 1.0}
    assert check_retries(np.int64(2)) == 2


def test_parse_size_refuses_infinite_sizes():
    with pytest.raises(ValueError, match="disk"):
        parse_size(math.inf, "disk")
    with pytest.raises(ValueError, match="disk"):
        parse_size("1e999 GB", "disk")


def test_slug_kept_per_name_is_that_of_the_name():
    from mesonb.client.calls import slug

    names = ["noop", "my func/with spaces", "-.-", "", "é" * 50, "a.b_c-d", "x" * 60]
    for name in names * 2:  # the second time from the cache
        plain = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:40]
        assert slug(name) == (plain.strip("-.") or "call")
    assert slug("my func/with spaces") == "my-func-with-spaces"
