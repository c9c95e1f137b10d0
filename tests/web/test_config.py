"""``[http]`` in the daemon config: addresses, loopback, the token file, and what
``jobd check`` says about each."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from jobd._exceptions import ConfigError
from jobd.cli.check import run_check
from jobd.config.http import is_loopback, parse_listen
from jobd.config.loader import load_config


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:8750", ("127.0.0.1", 8750, None, True)),
        ("localhost:80", ("localhost", 80, None, True)),
        ("[::1]:8750", ("::1", 8750, None, True)),
        ("0.0.0.0:8750", ("0.0.0.0", 8750, None, False)),
        ("[::]:8750", ("::", 8750, None, False)),
        ("192.168.1.5:9000", ("192.168.1.5", 9000, None, False)),
        ("dash.example.org:443", ("dash.example.org", 443, None, False)),
        ("127.0.0.1:0", ("127.0.0.1", 0, None, True)),
        ("/run/jobd/http.sock", (None, None, "/run/jobd/http.sock", True)),
        ("../var/http.sock", (None, None, "../var/http.sock", True)),
    ],
)
def test_listen_forms(text: str, parsed: tuple[object, ...]) -> None:
    assert parse_listen(text) == parsed


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("8750", "neither HOST:PORT"),
        (":8750", "names no host"),
        ("127.0.0.1:70000", "out of range"),
        ("127.0.0.1", "neither HOST:PORT"),
    ],
)
def test_bad_listen(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_listen(text)


def test_loopback() -> None:
    assert is_loopback("127.8.0.1") and is_loopback("::1") and is_loopback("LOCALHOST")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.org")


def _config(tmp_path: Path, http: str) -> Path:
    (tmp_path / "jobs.d").mkdir(exist_ok=True)
    cfg = tmp_path / "jobd.toml"
    cfg.write_text(
        f'[daemon]\njobs_dir = "jobs.d"\nstate_dir = "var"\n'
        f'socket = "var/jobd.sock"\n\n[http]\n{http}\n'
    )
    return cfg


def _check(cfg: Path) -> tuple[int, str]:
    err = io.StringIO()
    code = run_check(cfg, [], out=io.StringIO(), err=err)
    return code, err.getvalue()


def test_no_http_table_means_no_endpoint(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "")
    cfg.write_text(cfg.read_text().replace("[http]\n", ""))
    assert load_config(cfg).http is None


def test_loopback_needs_no_token(tmp_path: Path) -> None:
    http = load_config(_config(tmp_path, 'listen = "127.0.0.1:8750"')).http
    assert http is not None
    assert (http.host, http.port, http.path, http.token_file, http.loopback) == (
        "127.0.0.1",
        8750,
        None,
        None,
        True,
    )


def test_unix_socket_path_is_relative_to_the_config(tmp_path: Path) -> None:
    http = load_config(_config(tmp_path, 'listen = "var/http.sock"')).http
    assert http is not None and http.path == tmp_path / "var" / "http.sock"


def test_beyond_loopback_without_a_token_is_refused(tmp_path: Path) -> None:
    code, err = _check(_config(tmp_path, 'listen = "0.0.0.0:8750"'))
    assert code == 1
    assert (
        "jobd.toml:7: http.listen: '0.0.0.0:8750' is reachable from other machines: "
        "set http.token_file" in err
    )


def test_token_file_problems(tmp_path: Path) -> None:
    token = tmp_path / "token"
    cfg = _config(tmp_path, 'listen = "0.0.0.0:8750"\ntoken_file = "token"')
    code, err = _check(cfg)
    assert code == 1 and f"http.token_file: token file {token} does not exist" in err
    token.write_text("short\n")
    os.chmod(token, 0o600)
    code, err = _check(cfg)
    assert "holds 5 characters; it needs at least 16" in err
    token.write_text("a-long-enough-token-0123456789\n")
    os.chmod(token, 0o644)
    code, err = _check(cfg)
    assert code == 1 and "readable by every user (mode 0644); chmod o-r" in err
    os.chmod(token, 0o640)
    assert _check(cfg) == (0, "")
    http = load_config(cfg).http
    assert http is not None and http.token_file == token and not http.loopback


def test_unknown_key_and_missing_listen(tmp_path: Path) -> None:
    code, err = _check(_config(tmp_path, 'lisen = "127.0.0.1:1"'))
    assert code == 1
    assert "jobd.toml:7: http.lisen: unknown key; did you mean 'listen'?" in err
    assert "http: missing key listen" in err
    code, err = _check(_config(tmp_path, 'listen = "8750"'))
    assert "http.listen: '8750' is neither HOST:PORT" in err


def test_example_config_turns_the_dashboard_on() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "config" / "jobd.toml")
    assert config.http is not None and config.http.listen == "127.0.0.1:8750"


def test_config_error_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(_config(tmp_path, 'listen = "10.1.2.3:80"'))


def test_without_the_web_extra_check_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name in ("starlette", "uvicorn") else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)  # as if not installed
    code, err = _check(_config(tmp_path, 'listen = "127.0.0.1:8750"'))
    assert code == 1
    assert (
        "jobd.toml:6: http: the dashboard needs jobd's web extra (starlette, uvicorn not "
        "installed): pip install 'jobd[web]', or remove [http]" in err
    )
