/* edge_http.h: outbound HTTP for EdgeCDN handlers, both ABIs (see docs/abi.md, "Outbound HTTP").
 *
 * The host imports of the `edge_http` module, their error codes, and two helpers. A module
 * that imports them is accepted only when its manifest grants at least one host:
 *
 *     [module.weather]
 *     allowed_outbound_hosts = ["http://self", "https://api.example.com"]
 *     outbound_requests = 4          # per invocation (default 10)
 *     outbound_bytes = "256KiB"      # bodies sent and received, per invocation (default 4MiB)
 *     outbound_timeout = "500ms"     # per request, within the handler's own timeout (default 5s)
 *
 * Every URL (and every redirect the host follows for you) is checked against that list
 * before anything leaves the node; a path such as "/shop/weather?country=KR" (or
 * "http://self/shop/...") names one of the app's own origin routes and needs "http://self".
 * Requests go through the edge node's HTTP cache unless EDGE_HTTP_BYPASS_CACHE is set; the
 * answer's `x-cache` header says HIT, MISS, STALE or REVALIDATED. The call blocks the guest
 * (the host runs it on a worker thread, never on the node's event loop) for at most what is
 * left of the handler's deadline.
 *
 *     #include "edge_http.h"
 *
 *     edge_http_response res;                 // handle, status, cache outcome, body size
 *     static char body[4096];
 *     if (edge_http_get("/shop/weather?country=KR", 0, &res, body, sizeof body) == EDGE_HTTP_OK) {
 *         // body[0 .. res.body_copied) holds the body when res.body_copied == res.body_size;
 *         // otherwise edge_http_body_read(res.handle, ...) reads the rest.
 *     } else {
 *         char why[256];
 *         uint32_t len;
 *         edge_http_error_message(why, sizeof why, &len);   // e.g. "... is not in the module's allowed_outbound_hosts"
 *     }
 *
 * Each call is a trip from wasm into the host's Python, which must take the interpreter's
 * lock back from the node's busy event loop: fewer calls serve more requests (measured:
 * six calls per fetch halved a handler's requests/s). So `send` does the common case in
 * one call: it writes the handle, the status, the cache outcome and the body's size, and
 * copies the body's first bytes into the buffer you pass. A `body_read` shorter than its
 * buffer means the body ended (the host holds whole bodies), and `close` is optional
 * (every answer is dropped when the invocation ends).
 *
 * Headers go and come as one block of "name: value\n" lines. The host sets Host,
 * Content-Length and traceparent itself and ignores them in the block. Buffers are the
 * guest's: a `*_get` call whose answer does not fit returns EDGE_HTTP_ERR_BUFFER_TOO_SMALL
 * and writes the size it needs to `*written`.
 */
#ifndef EDGE_HTTP_H
#define EDGE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define EDGE_HTTP_IMPORT(name) __attribute__((import_module("edge_http"), import_name(name)))

/* Error codes (wasm_host/outbound.py ERRORS). */
enum {
    EDGE_HTTP_OK = 0,
    EDGE_HTTP_ERR_INVALID_HANDLE = 1,
    EDGE_HTTP_ERR_MEMORY_ACCESS = 2,
    EDGE_HTTP_ERR_BUFFER_TOO_SMALL = 3,
    EDGE_HTTP_ERR_HEADER_NOT_FOUND = 4,
    EDGE_HTTP_ERR_INVALID_URL = 5,
    EDGE_HTTP_ERR_NOT_ALLOWED = 6,       /* not in allowed_outbound_hosts */
    EDGE_HTTP_ERR_BLOCKED_ADDRESS = 7,   /* link-local or cloud metadata address */
    EDGE_HTTP_ERR_TOO_MANY_REQUESTS = 8, /* outbound_requests reached */
    EDGE_HTTP_ERR_TOO_MANY_BYTES = 9,    /* outbound_bytes reached */
    EDGE_HTTP_ERR_TIMEOUT = 10,          /* outbound_timeout, or the handler's deadline */
    EDGE_HTTP_ERR_FAILED = 11,           /* connection refused, reset, ... */
    EDGE_HTTP_ERR_UNAVAILABLE = 12,      /* this host offers no outbound HTTP */
    EDGE_HTTP_ERR_INVALID_REQUEST = 13,  /* bad method or header block */
    EDGE_HTTP_ERR_TOO_MANY_REDIRECTS = 14,
    EDGE_HTTP_ERR_SELF_NOT_ORIGIN = 15,  /* a self path that is not an origin route */
};

/* Flags of edge_http_send. */
#define EDGE_HTTP_BYPASS_CACHE 1u

/* edge_http_response.cache: how the node's HTTP cache answered. */
enum {
    EDGE_HTTP_CACHE_NONE = 0, /* not used: bypassed, or not a GET/HEAD */
    EDGE_HTTP_CACHE_HIT = 1,
    EDGE_HTTP_CACHE_MISS = 2,
    EDGE_HTTP_CACHE_STALE = 3,
    EDGE_HTTP_CACHE_REVALIDATED = 4,
};

/* What `send` writes on success. */
typedef struct {
    uint32_t handle;      /* for the other calls */
    uint32_t status;      /* 200, 404, ... */
    uint32_t cache;       /* EDGE_HTTP_CACHE_* */
    uint32_t body_size;   /* the whole body's size */
    uint32_t body_copied; /* bytes of it copied into send's buffer (body_read goes on from there) */
} edge_http_response;

/* Send a request; on success *response_out describes the answer and its body's first
 * `buf_len` bytes are in `buf` (buf_len 0: read it all with body_read). `method` is upper
 * case ("GET"). */
EDGE_HTTP_IMPORT("send")
uint32_t edge_http_send(const char *method, uint32_t method_len, const char *url, uint32_t url_len,
                        const char *headers, uint32_t headers_len, const void *body, uint32_t body_len,
                        uint32_t flags, edge_http_response *response_out, void *buf, uint32_t buf_len);

/* The answer's status code. */
EDGE_HTTP_IMPORT("status")
uint32_t edge_http_status(uint32_t handle, uint32_t *status_out);

/* Every header of the answer as "name: value\n" lines (names in lower case). */
EDGE_HTTP_IMPORT("headers_get")
uint32_t edge_http_headers_get(uint32_t handle, char *buf, uint32_t buf_len, uint32_t *written);

/* One header's value (repeats joined by ", "); EDGE_HTTP_ERR_HEADER_NOT_FOUND if absent. */
EDGE_HTTP_IMPORT("header_get")
uint32_t edge_http_header_get(uint32_t handle, const char *name, uint32_t name_len, char *buf,
                              uint32_t buf_len, uint32_t *written);

/* The next chunk of the body, at most buf_len bytes; fewer (0 included) at the end. */
EDGE_HTTP_IMPORT("body_read")
uint32_t edge_http_body_read(uint32_t handle, void *buf, uint32_t buf_len, uint32_t *read_out);

/* Forget the answer (every answer is forgotten when the invocation ends anyway). */
EDGE_HTTP_IMPORT("close")
uint32_t edge_http_close(uint32_t handle);

/* Why the last call failed, as text. */
EDGE_HTTP_IMPORT("error_message")
uint32_t edge_http_error_message(char *buf, uint32_t buf_len, uint32_t *written);

/* Helpers. */

static inline uint32_t edge_http_strlen_(const char *s) {
    uint32_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

/* GET `url` (a NUL-terminated string) with no headers; the body's first buf_len bytes into buf. */
static inline uint32_t edge_http_get(const char *url, uint32_t flags, edge_http_response *response_out, void *buf,
                                     uint32_t buf_len) {
    return edge_http_send("GET", 3, url, edge_http_strlen_(url), "", 0, "", 0, flags, response_out, buf, buf_len);
}

/* Read the body into buf (at most cap bytes); the number of bytes read. One host call when
 * the body fits: a short read is the end. */
static inline uint32_t edge_http_read_all(uint32_t handle, void *buf, uint32_t cap) {
    uint32_t total = 0;
    while (total < cap) {
        uint32_t want = cap - total, n = 0;
        if (edge_http_body_read(handle, (char *)buf + total, want, &n) != EDGE_HTTP_OK) {
            break;
        }
        total += n;
        if (n < want) {
            break;
        }
    }
    return total;
}

#endif /* EDGE_HTTP_H */
