// The workerd side of bench/edge_throughput.py: a Cloudflare Worker that serves /hello by
// calling the same reactor-ABI wasm module the edge node runs (handlers/geo-hello-reactor),
// encoding the request and decoding the response exactly as docs/abi.md specifies.
// Like the edge node, it takes a fresh instance per request: the module's bump allocator
// never frees, and per-request isolation is the semantics being compared.
import wasmModule from "./handler.wasm";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encodeRequest(request, url) {
  const method = encoder.encode(request.method);
  const path = encoder.encode(url.pathname);
  const query = encoder.encode(url.search.slice(1));
  const remote = encoder.encode(request.headers.get("cf-connecting-ip") || "");
  const route = encoder.encode("/hello");
  const headers = [];
  for (const [name, value] of request.headers) headers.push([encoder.encode(name), encoder.encode(value)]);
  let size = 4 * 8 + method.length + path.length + query.length + remote.length + route.length;
  for (const [n, v] of headers) size += 8 + n.length + v.length;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  let at = 0;
  const u32 = (x) => { view.setUint32(at, x, true); at += 4; };
  const put = (b) => { bytes.set(b, at); at += b.length; };
  u32(1); u32(method.length); u32(path.length); u32(query.length); u32(remote.length); u32(route.length);
  u32(headers.length); u32(0);
  put(method); put(path); put(query); put(remote); put(route);
  for (const [n, v] of headers) { u32(n.length); u32(v.length); put(n); put(v); }
  return bytes;
}

function decodeResponse(memory, ptr, len) {
  const view = new DataView(memory.buffer, ptr, len);
  const bytes = new Uint8Array(memory.buffer, ptr, len);
  const status = view.getUint32(0, true);
  const count = view.getUint32(4, true);
  const bodyLength = view.getUint32(8, true);
  let at = 12;
  const headers = new Headers();
  for (let i = 0; i < count; i++) {
    const n = view.getUint32(at, true);
    const v = view.getUint32(at + 4, true);
    at += 8;
    headers.append(decoder.decode(bytes.subarray(at, at + n)), decoder.decode(bytes.subarray(at + n, at + n + v)));
    at += n + v;
  }
  return new Response(bytes.slice(at, at + bodyLength), { status, headers });
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const encoded = encodeRequest(request, url);
    const instance = new WebAssembly.Instance(wasmModule, {});
    const { memory, edge_alloc, edge_handle } = instance.exports;
    const ptr = edge_alloc(encoded.length);
    new Uint8Array(memory.buffer, ptr, encoded.length).set(encoded);
    const packed = edge_handle(ptr, encoded.length);
    return decodeResponse(memory, Number(packed >> 32n), Number(packed & 0xffffffffn));
  },
};
