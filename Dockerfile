# syntax=docker/dockerfile:1
#
# One image for every EdgeCDN process: edge-node, edge-router, control-plane, iot-gateway,
# mqtt-broker (Mosquitto), edgectl and edgecdn. Kubernetes manifests come from
# `edgecdn k8s render` (deploy/k8s/); docs/kubernetes.md says how to build, push and apply.
#
#   docker build -t REGISTRY/edgecdn:0.1.0 .
#
# The builder compiles the native parts (the mypyc hot path and wasm_host's WASI library,
# tools/accel.py) and installs every wheel; the runtime stage gets only their results: no
# compiler, a non-root user, nothing written outside mounted volumes (read-only root
# filesystem), no HEALTHCHECK (Kubernetes probes the processes).
#
# Debian's python3 on both stages: the interpreter the developers' .venv is made from (built
# with PGO and LTO), the same ABI the compiled modules were built for, and Mosquitto from
# the same distribution. Pin the base by digest (debian:bookworm-slim@sha256:...) in a
# release pipeline.

FROM debian:bookworm-slim AS builder
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# Unpinned on purpose (hadolint DL3008): a stable release only takes security fixes, and a
# pinned version disappears from the mirror when one lands. The release is the base's.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends python3 python3-venv python3-dev gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
WORKDIR /app

# The wheels first, from pyproject's dependency list alone: a change of source reuses the layer.
COPY pyproject.toml README.md ./
RUN /opt/venv/bin/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && /opt/venv/bin/pip install --requirement /tmp/requirements.txt

# The sources: every package pyproject installs, the shipped handlers (the gateways' initial
# module, the example apps operators register) and the default world.
COPY protos/ protos/
COPY geo/ geo/
COPY wasm_host/ wasm_host/
COPY edge_node/ edge_node/
COPY control_plane/ control_plane/
COPY router/ router/
COPY iot_gateway/ iot_gateway/
COPY simulator/ simulator/
COPY runtime/ runtime/
COPY manifest/ manifest/
COPY cpclient/ cpclient/
COPY tracing/ tracing/
COPY httpfront/ httpfront/
COPY faultrelay/ faultrelay/
COPY mqtt_broker/ mqtt_broker/
COPY iotwire/ iotwire/
COPY httpcache/ httpcache/
COPY handlers/ handlers/
COPY deploy/local/ deploy/local/
COPY tools/ tools/

# Editable, as in development: the compiled modules sit beside their sources in /app, where
# the installed distribution finds them (tools/accel.py), and /app is copied whole below.
RUN /opt/venv/bin/pip install --no-deps --editable .
# mypyc and the stubs it type-checks with are build tools: installed for the build, then removed.
RUN /opt/venv/bin/pip install 'mypy>=1.13,<3' 'types-protobuf>=5.28' 'types-grpcio>=1.0' 'setuptools>=77' \
    && /opt/venv/bin/python -m tools.accel build --force \
    && /opt/venv/bin/python -m tools.accel check \
    && /opt/venv/bin/pip uninstall --yes mypy mypy_extensions librt ast-serialize pathspec types-protobuf types-grpcio \
    && rm -rf build tools \
    && /opt/venv/bin/python -m compileall -q /app

FROM debian:bookworm-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# python3: the interpreter the venv links to; mosquitto: what `mqtt-broker --engine mosquitto` runs.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends python3 mosquitto ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 edgecdn \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin edgecdn
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
# Bytecode was compiled in the builder: the root filesystem is read-only at run time.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
# Every entry point starts (imports resolve, the compiled modules load) before the image exists.
RUN for script in edgecdn edgectl control-plane edge-node edge-router iot-gateway mqtt-broker; do \
        "$script" --help > /dev/null || exit 1; \
    done
# A numeric user, so that Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 7000 8080 1883 9100 9102
CMD ["edgecdn", "--help"]
