"""Pure library that runs WebAssembly handlers with wasmtime in a sandbox (WAGI and reactor ABIs).

Typical use (the edge node)::

    engine = WasmEngine(EngineConfig())                  # one per process; ticks epochs
    cache = ModuleCache(engine, Path(".edgecdn/modules"))
    compiled = cache.load_file(Path("handlers/geo-hello/geo_hello.wasm"))
    handler = create_handler(engine, compiled, abi="wagi", limits=Limits(), env={})
    executor = WasmExecutor()
    response = await executor.handle(handler, WasmRequest(method="GET", path="/hello"))

See docs/abi.md for both ABIs, the sandbox and the measured design decisions.
"""

from wasm_host.cache import CacheStats, CompiledModule, ModuleCache, module_digest
from wasm_host.cgi import cgi_environ, parse_cgi_response
from wasm_host.codec import decode_response, encode_request
from wasm_host.config import EngineConfig, Limits
from wasm_host.engine import WasmEngine
from wasm_host.errors import (
    AbiMismatchError,
    DeadlineExceededError,
    EngineClosedError,
    HandlerError,
    HandlerExitError,
    InstanceLimitError,
    InvalidCgiOutputError,
    InvalidOutputError,
    InvalidReactorOutputError,
    MemoryLimitError,
    ModuleInvalidError,
    OutputTooLargeError,
    WasmHostError,
    WasmTrapError,
)
from wasm_host.executor import ExecutorConfig, WasmExecutor
from wasm_host.handler import ABIS, Abi, Handler, create_handler
from wasm_host.reactor import ReactorHandler
from wasm_host.values import WasmRequest, WasmResponse
from wasm_host.wagi import WagiHandler

__all__ = [
    "ABIS",
    "Abi",
    "AbiMismatchError",
    "CacheStats",
    "CompiledModule",
    "DeadlineExceededError",
    "EngineClosedError",
    "EngineConfig",
    "ExecutorConfig",
    "Handler",
    "HandlerError",
    "HandlerExitError",
    "InstanceLimitError",
    "InvalidCgiOutputError",
    "InvalidOutputError",
    "InvalidReactorOutputError",
    "Limits",
    "MemoryLimitError",
    "ModuleCache",
    "ModuleInvalidError",
    "OutputTooLargeError",
    "ReactorHandler",
    "WagiHandler",
    "WasmEngine",
    "WasmExecutor",
    "WasmHostError",
    "WasmRequest",
    "WasmResponse",
    "WasmTrapError",
    "cgi_environ",
    "create_handler",
    "decode_response",
    "encode_request",
    "module_digest",
    "parse_cgi_response",
]
