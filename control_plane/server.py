"""The control plane's gRPC server: lifecycle and the services it mounts.

Listeners start last and stop first: the health service reports NOT_SERVING before the
server drains, so clients and load balancers stop sending new calls.
"""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from control_plane.config import ControlPlaneConfig
from runtime.process import StopEvent, wait_for_stop
from runtime.ready import ReadyCallback

logger = logging.getLogger(__name__)

SERVICE_NAME = "control-plane"
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


async def run(
    config: ControlPlaneConfig, *, ready: ReadyCallback | None = None, stop: StopEvent | None = None
) -> None:
    """Serve until ``stop`` is set (or the task is cancelled), then shut down gracefully."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )
    port = server.add_insecure_port(f"{config.host}:{config.port}")
    await server.start()
    try:
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        address = f"{config.host}:{port}"
        logger.info("control plane serving gRPC on %s", address)
        if ready is not None:
            ready({"grpc": address})
        await wait_for_stop(stop)
    finally:
        await health_servicer.enter_graceful_shutdown()
        await server.stop(grace=config.grace_seconds)
        logger.info("control plane stopped")
