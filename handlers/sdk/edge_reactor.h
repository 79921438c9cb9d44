/* edge_reactor.h: single-header C SDK for the EdgeCDN reactor ABI (see docs/abi.md).
 *
 * A reactor module exports `memory`, `edge_alloc(len) -> ptr` and
 * `edge_handle(ptr, len) -> i64`. This header implements all three; you write
 *
 *     #define EDGE_REACTOR_IMPLEMENTATION
 *     #include "edge_reactor.h"
 *
 *     int edge_main(const edge_request *req, edge_response *res) {
 *         edge_bytes country = edge_header_get(req, "cf-ipcountry");
 *         edge_response_header(res, "content-type", "text/plain");
 *         edge_response_print(res, "hello ");
 *         edge_response_write(res, country.ptr, country.len);
 *         return 0;   // non-zero: the SDK answers 500 instead
 *     }
 *
 * and build freestanding (no libc, no WASI imports: the host then skips WASI setup):
 *
 *     clang --target=wasm32-unknown-unknown -O2 -mbulk-memory -nostdlib \
 *           -Wl,--no-entry -Wl,--export=edge_alloc -Wl,--export=edge_handle \
 *           -Wl,--strip-all handler.c -o handler.wasm
 *
 * or against wasi-libc (--target=wasm32-wasi -mexec-model=reactor), in which case the
 * SDK allocates with malloc. Each request runs in a fresh instance, so the freestanding
 * allocator is a bump allocator that never frees: the whole heap goes with the instance.
 *
 * Wire format (all integers little-endian u32, strings raw bytes, no NULs):
 *   request:  version(=1) method_len path_len query_len remote_addr_len route_len
 *             header_count body_len | method path query remote_addr route
 *             | header_count x (name_len value_len name value) | body
 *             header names arrive in lower case.
 *   response: status header_count body_len
 *             | header_count x (name_len value_len name value) | body
 *   edge_handle returns ((uint64_t)ptr << 32) | len of the response bytes.
 */
#ifndef EDGE_REACTOR_H
#define EDGE_REACTOR_H

#include <stddef.h>
#include <stdint.h>

#ifndef EDGE_MAX_HEADERS
#define EDGE_MAX_HEADERS 128
#endif

#define EDGE_ENCODING_VERSION 1u

/* A byte string inside the request buffer (not NUL-terminated). */
typedef struct {
    const uint8_t *ptr;
    uint32_t len;
} edge_bytes;

typedef struct {
    edge_bytes name; /* lower case */
    edge_bytes value;
} edge_header;

typedef struct {
    edge_bytes method;
    edge_bytes path;
    edge_bytes query;
    edge_bytes remote_addr;
    edge_bytes matched_route;
    edge_bytes body;
    uint32_t header_count;
    edge_header headers[EDGE_MAX_HEADERS]; /* the first EDGE_MAX_HEADERS; the rest are skipped */
} edge_request;

/* A response under construction: status, then headers, then body, in that order. */
typedef struct {
    uint8_t *buf;
    uint32_t len;
    uint32_t cap;
    uint32_t status;
    uint32_t header_count;
    uint32_t body_start; /* 0 until the first body byte is written */
    int misuse;          /* a header after the body, or a header count overflow */
} edge_response;

/* Implemented by the handler. Return 0 on success; anything else makes the SDK answer 500. */
int edge_main(const edge_request *req, edge_response *res);

/* Decodes `len` bytes at `buf` into `out`. Returns 0, or -1 if the encoding is malformed. */
int edge_decode_request(const uint8_t *buf, uint32_t len, edge_request *out);

/* The first value of header `lower_name` (lower case, NUL-terminated), or {NULL, 0}. */
edge_bytes edge_header_get(const edge_request *req, const char *lower_name);

/* 1 when `b` equals the NUL-terminated `s`. */
int edge_bytes_eq(edge_bytes b, const char *s);

void edge_response_status(edge_response *res, uint32_t status);
void edge_response_header(edge_response *res, const char *name, const char *value);
void edge_response_header_n(edge_response *res, const char *name, uint32_t name_len, const uint8_t *value,
                            uint32_t value_len);
void edge_response_write(edge_response *res, const void *data, uint32_t len);
void edge_response_print(edge_response *res, const char *text);

/* Exported to the host. */
uint32_t edge_alloc(uint32_t len);
uint64_t edge_handle(uint32_t ptr, uint32_t len);

#ifdef EDGE_REACTOR_IMPLEMENTATION

#ifdef __wasi__
#include <stdlib.h>
#include <string.h>
static void *edge__malloc(uint32_t len) {
    void *p = malloc(len ? len : 1);
    if (p == NULL) {
        __builtin_trap(); /* the host reports a trap at the memory cap as a memory-limit failure */
    }
    return p;
}
#define edge__copy(dst, src, n) memcpy((dst), (src), (n))
#else
extern unsigned char __heap_base;
static uintptr_t edge__next = 0;

static void *edge__malloc(uint32_t len) {
    if (edge__next == 0) {
        edge__next = (uintptr_t)&__heap_base;
    }
    uintptr_t start = (edge__next + 15u) & ~(uintptr_t)15u;
    uintptr_t end = start + len;
    if (end < start) {
        __builtin_trap();
    }
    uintptr_t have = __builtin_wasm_memory_size(0) * 65536u;
    if (end > have) {
        uintptr_t pages = (end - have + 65535u) / 65536u;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) {
            __builtin_trap(); /* refused by the host's memory cap */
        }
    }
    edge__next = end;
    return (void *)start;
}

/* clang may emit calls to these for struct copies; freestanding builds have no libc. */
void *memcpy(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}
void *memset(void *dst, int c, size_t n) {
    uint8_t *d = dst;
    while (n--) {
        *d++ = (uint8_t)c;
    }
    return dst;
}
#define edge__copy(dst, src, n) memcpy((dst), (src), (n))
#endif

static uint32_t edge__u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void edge__put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Takes `n` bytes at *pos into *out if they fit within `len`. */
static int edge__take(const uint8_t *buf, uint32_t len, uint32_t *pos, uint32_t n, edge_bytes *out) {
    if (n > len - *pos) {
        return -1;
    }
    out->ptr = buf + *pos;
    out->len = n;
    *pos += n;
    return 0;
}

int edge_decode_request(const uint8_t *buf, uint32_t len, edge_request *out) {
    if (len < 32 || edge__u32(buf) != EDGE_ENCODING_VERSION) {
        return -1;
    }
    uint32_t pos = 32;
    edge_bytes *fields[5] = {&out->method, &out->path, &out->query, &out->remote_addr, &out->matched_route};
    for (int i = 0; i < 5; i++) {
        if (edge__take(buf, len, &pos, edge__u32(buf + 4 + 4 * i), fields[i]) != 0) {
            return -1;
        }
    }
    uint32_t count = edge__u32(buf + 24);
    uint32_t body_len = edge__u32(buf + 28);
    out->header_count = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (len - pos < 8) {
            return -1;
        }
        uint32_t name_len = edge__u32(buf + pos);
        uint32_t value_len = edge__u32(buf + pos + 4);
        pos += 8;
        edge_bytes name, value;
        if (edge__take(buf, len, &pos, name_len, &name) != 0 || edge__take(buf, len, &pos, value_len, &value) != 0) {
            return -1;
        }
        if (out->header_count < EDGE_MAX_HEADERS) {
            out->headers[out->header_count].name = name;
            out->headers[out->header_count].value = value;
            out->header_count++;
        }
    }
    if (len - pos != body_len) {
        return -1;
    }
    out->body.ptr = buf + pos;
    out->body.len = body_len;
    return 0;
}

int edge_bytes_eq(edge_bytes b, const char *s) {
    uint32_t i = 0;
    for (; s[i] != '\0'; i++) {
        if (i >= b.len || b.ptr[i] != (uint8_t)s[i]) {
            return 0;
        }
    }
    return i == b.len;
}

edge_bytes edge_header_get(const edge_request *req, const char *lower_name) {
    for (uint32_t i = 0; i < req->header_count; i++) {
        if (edge_bytes_eq(req->headers[i].name, lower_name)) {
            return req->headers[i].value;
        }
    }
    edge_bytes none = {NULL, 0};
    return none;
}

static uint32_t edge__strlen(const char *s) {
    uint32_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    return n;
}

static void edge__reserve(edge_response *res, uint32_t more) {
    if (res->cap - res->len >= more) {
        return;
    }
    uint32_t cap = res->cap ? res->cap : 256;
    while (cap - res->len < more) {
        if (cap > 0x7fffffffu) {
            __builtin_trap();
        }
        cap *= 2;
    }
    uint8_t *grown = edge__malloc(cap);
    if (res->len) {
        edge__copy(grown, res->buf, res->len);
    }
    res->buf = grown;
    res->cap = cap;
}

static void edge__append(edge_response *res, const void *data, uint32_t len) {
    edge__reserve(res, len);
    if (len) {
        edge__copy(res->buf + res->len, data, len);
    }
    res->len += len;
}

void edge_response_status(edge_response *res, uint32_t status) { res->status = status; }

void edge_response_header_n(edge_response *res, const char *name, uint32_t name_len, const uint8_t *value,
                            uint32_t value_len) {
    if (res->body_start != 0) {
        res->misuse = 1; /* headers must precede the body */
        return;
    }
    uint8_t lengths[8];
    edge__put_u32(lengths, name_len);
    edge__put_u32(lengths + 4, value_len);
    edge__append(res, lengths, 8);
    edge__append(res, name, name_len);
    edge__append(res, value, value_len);
    res->header_count++;
}

void edge_response_header(edge_response *res, const char *name, const char *value) {
    edge_response_header_n(res, name, edge__strlen(name), (const uint8_t *)value, edge__strlen(value));
}

void edge_response_write(edge_response *res, const void *data, uint32_t len) {
    if (res->body_start == 0) {
        res->body_start = res->len;
    }
    edge__append(res, data, len);
}

void edge_response_print(edge_response *res, const char *text) { edge_response_write(res, text, edge__strlen(text)); }

static uint64_t edge__finish(edge_response *res) {
    uint32_t body_start = res->body_start ? res->body_start : res->len;
    edge__put_u32(res->buf, res->status);
    edge__put_u32(res->buf + 4, res->header_count);
    edge__put_u32(res->buf + 8, res->len - body_start);
    return (uint64_t)(uintptr_t)res->buf << 32 | res->len;
}

static void edge__begin(edge_response *res, uint32_t status) {
    res->buf = NULL;
    res->len = res->cap = res->header_count = res->body_start = 0;
    res->misuse = 0;
    res->status = status;
    uint8_t head[12] = {0};
    edge__append(res, head, sizeof head);
}

static uint64_t edge__error(edge_response *res, uint32_t status, const char *message) {
    edge__begin(res, status);
    edge_response_header(res, "content-type", "text/plain; charset=utf-8");
    edge_response_print(res, message);
    return edge__finish(res);
}

__attribute__((export_name("edge_alloc"))) uint32_t edge_alloc(uint32_t len) {
    return (uint32_t)(uintptr_t)edge__malloc(len);
}

__attribute__((export_name("edge_handle"))) uint64_t edge_handle(uint32_t ptr, uint32_t len) {
    static edge_request req; /* ~2 KiB: static, not on the small wasm stack */
    edge_response res;
    if (edge_decode_request((const uint8_t *)(uintptr_t)ptr, len, &req) != 0) {
        return edge__error(&res, 400, "malformed request encoding\n");
    }
    edge__begin(&res, 200);
    if (edge_main(&req, &res) != 0) {
        return edge__error(&res, 500, "handler failed\n");
    }
    if (res.misuse) {
        return edge__error(&res, 500, "handler wrote a header after the body\n");
    }
    return edge__finish(&res);
}

#endif /* EDGE_REACTOR_IMPLEMENTATION */
#endif /* EDGE_REACTOR_H */
