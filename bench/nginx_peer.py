"""nginx with ``proxy_cache`` as the peer of the edge node's cache (bench.nginx_cache): its
configuration in a prefix directory of its own, and a start that waits until it answers."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import aiohttp

from bench.harness import PeerMissingError, free_port

NGINX_INSTALL = "apt-get install -y nginx-light"
NGINX_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
# nginx's cache files go to memory (tmpfs) where there is one, as the node's entries do.
SHM = Path("/dev/shm")

NGINX_CONF = """
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  open_file_cache max=10000 inactive=60s;  # cache files stay open: no open/close per hit
  open_file_cache_valid 60s;
  proxy_cache_path {dir}/cache levels=1:2 keys_zone=edge:10m max_size=1g inactive=60m use_temp_path=off;
  upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache edge;
      proxy_cache_lock on;
      add_header x-cache $upstream_cache_status;
    }}
  }}
}}
"""


def pin_cpu(cpu: int | None) -> list[str]:
    if cpu is None or (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpu)]


def memory_dir() -> Path | None:
    return SHM if SHM.is_dir() else None


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in NGINX_PATHS if Path(p).exists()), None)
    if found is None:
        raise PeerMissingError(f"nginx is not installed; install it with: {NGINX_INSTALL}")
    return found


def nginx_conf(directory: Path, port: int, origin_port: int, workers: int) -> Path:
    """nginx's prefix directory, with its configuration, temporary and cache paths in it."""
    (directory / "tmp").mkdir(parents=True)
    # Run as root, nginx's workers drop to an unprivileged user: they must reach the cache.
    for path in (directory, directory.parent):
        path.chmod(0o755)
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, port=port, origin_port=origin_port, workers=workers))
    return conf


async def start_nginx(
    directory: Path, origin_port: int, workers: int
) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    conf = nginx_conf(directory, port, origin_port, workers)
    process = await asyncio.create_subprocess_exec(
        *pin_cpu(0 if workers == 1 else None), nginx_binary(), "-c", str(conf), "-p", str(directory),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    async with aiohttp.ClientSession() as client:
        while True:
            try:
                async with client.get(url + "/c/0", timeout=aiohttp.ClientTimeout(total=1)) as response:
                    if response.status == 200:
                        return process, url
            except (aiohttp.ClientError, TimeoutError):
                pass
            if process.returncode is not None or time.monotonic() > deadline:
                process.kill()
                log = (directory / "error.log").read_text() if (directory / "error.log").exists() else ""
                raise RuntimeError(f"nginx did not start:\n{log}")
            await asyncio.sleep(0.1)
