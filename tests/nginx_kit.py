"""A real nginx running the shipped deploy/nginx/billumy.conf on free ports, for tests.

The config is copied into a temporary prefix and its placeholders rewritten (upstream address,
certificate paths, listen addresses); a self-signed certificate for localhost and 127.0.0.1 is
made there too, so clients can verify TLS against ``prefix / "fullchain.pem"``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx" / "billumy.conf"


def find_nginx() -> str:
    """The nginx binary; skips the test (saying why) when nginx or openssl is missing."""
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if path is None:
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for the TLS server")
    return path


def self_signed(cert: Path, key: Path, *alt_names: str) -> None:
    """A self-signed certificate (its own CA) for ``alt_names`` (``DNS:...``, ``IP:...``)."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=billumy-test",
            "-addext",
            "subjectAltName=" + ",".join(alt_names),
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        check=True,
        timeout=30,
    )


def nginx_prefix(tmp: Path, upstream_port: int, http_port: int, https_port: int) -> Path:
    """A prefix dir with a self-signed cert, a copy of billumy.conf and an nginx.conf."""
    self_signed(tmp / "fullchain.pem", tmp / "privkey.pem", "DNS:localhost", "IP:127.0.0.1")
    conf = NGINX_CONF.read_text()
    replacements = {
        "server billumy:8011;": f"server 127.0.0.1:{upstream_port};",
        "/etc/nginx/certs/": f"{tmp}/",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "listen [::]:443 ssl;": "",
    }
    for old, new in replacements.items():
        assert old in conf, old
        conf = conf.replace(old, new)
    (tmp / "billumy.conf").write_text(conf)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {tmp}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp / "nginx.conf").write_text(
        f"""daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
{temp_paths}
    include {tmp}/billumy.conf;
}}
"""
    )
    return tmp


def nginx_args(nginx: str, prefix: Path) -> list[str]:
    """The command line that runs nginx with the config in ``prefix`` (add ``-t`` to test it)."""
    return [
        nginx,
        "-p",
        str(prefix),
        "-e",
        str(prefix / "error.log"),
        "-c",
        str(prefix / "nginx.conf"),
    ]


@contextmanager
def serve_nginx(nginx: str, prefix: Path, https_port: int) -> Iterator[None]:
    """Runs nginx until the block ends; fails the test with nginx's error log if it won't start."""
    proc = subprocess.Popen(
        nginx_args(nginx, prefix), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((prefix / "error.log").read_text())
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)
