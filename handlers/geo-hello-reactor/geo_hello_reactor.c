/* geo-hello over the reactor ABI: the same answers as geo-hello (WAGI), on the fast path.
 *
 * Freestanding (no libc, no WASI imports), built with the SDK in handlers/sdk. The edge
 * node's cf-ipcountry and x-edge-region headers arrive in the encoded request.
 */
#define EDGE_REACTOR_IMPLEMENTATION
#include "../sdk/edge_reactor.h"
#include "../geo-hello/greetings.h"

static void write_json_string(edge_response *res, edge_bytes s) {
    static const char hex[] = "0123456789abcdef";
    edge_response_print(res, "\"");
    for (uint32_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (c == '"' || c == '\\') {
            uint8_t escaped[2] = {'\\', c};
            edge_response_write(res, escaped, 2);
        } else if (c < 0x20) {
            uint8_t escaped[6] = {'\\', 'u', '0', '0', (uint8_t)hex[c >> 4], (uint8_t)hex[c & 15]};
            edge_response_write(res, escaped, 6);
        } else {
            edge_response_write(res, &c, 1);
        }
    }
    edge_response_print(res, "\"");
}

/* Client-influenced header values: printable ASCII only, else the fallback. */
static edge_bytes printable_or(edge_bytes value, const char *fallback) {
    int ok = value.len > 0;
    for (uint32_t i = 0; ok && i < value.len; i++) {
        ok = value.ptr[i] >= 0x20 && value.ptr[i] < 0x7f;
    }
    if (ok) {
        return value;
    }
    edge_bytes f = {(const uint8_t *)fallback, 0};
    while (fallback[f.len]) {
        f.len++;
    }
    return f;
}

int edge_main(const edge_request *req, edge_response *res) {
    edge_bytes country = edge_header_get(req, "cf-ipcountry");
    edge_bytes region = printable_or(edge_header_get(req, "x-edge-region"), "unknown");
    edge_bytes accept = edge_header_get(req, "accept");
    const struct greeting *g = greeting_for((const char *)country.ptr, country.len);
    edge_bytes shown = greeting_valid_country((const char *)country.ptr, country.len)
                           ? country
                           : printable_or((edge_bytes){0, 0}, "unknown");

    edge_response_header(res, "vary", "accept, cf-ipcountry, x-edge-region");
    edge_response_header(res, "content-language", g->language);
    edge_response_header_n(res, "x-edge-region", 13, region.ptr, region.len);
    if (accept.len && accept_wants_json((const char *)accept.ptr, accept.len)) {
        edge_response_header(res, "content-type", "application/json");
        edge_response_print(res, "{\"greeting\":\"");
        edge_response_print(res, g->text);
        edge_response_print(res, "\",\"language\":\"");
        edge_response_print(res, g->language);
        edge_response_print(res, "\",\"country\":\"");
        edge_response_write(res, shown.ptr, shown.len);
        edge_response_print(res, "\",\"region\":");
        write_json_string(res, region);
        edge_response_print(res, "}\n");
    } else {
        edge_response_header(res, "content-type", "text/plain; charset=utf-8");
        edge_response_print(res, g->text);
        edge_response_print(res, "! Your country: ");
        edge_response_write(res, shown.ptr, shown.len);
        edge_response_print(res, ". Served by edge region ");
        edge_response_write(res, region.ptr, region.len);
        edge_response_print(res, ".\n");
    }
    return 0;
}
