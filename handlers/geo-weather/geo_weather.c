/* geo-weather over WAGI: today's weather for the client's country, fetched from the shop.
 *
 * The edge node sets cf-ipcountry on every request (HTTP_CF_IPCOUNTRY here). The handler
 * asks the app's own origin route for that country's weather with one outbound request
 * (edge_http, handlers/sdk/edge_http.h): "/shop/weather?country=KR" names the route, which
 * the manifest grants as "http://self". The request goes through the edge node's HTTP
 * cache, so only the first client of a country in a region reaches the origin within the
 * origin's max-age; the answer says which (`upstream_cache`: MISS, HIT, ...).
 *
 * WEATHER_FETCH=off (granted by a manifest's env) answers the same JSON with a fixed
 * weather and no outbound request: bench/outbound_fetch.py's baseline, the same module
 * without the fetch.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sdk/edge_http.h"

/* Two upper-case letters, or "XX": the value becomes part of a URL and of JSON. */
static const char *country_code(const char *value) {
    if (value != NULL && strlen(value) == 2 && value[0] >= 'A' && value[0] <= 'Z' && value[1] >= 'A' &&
        value[1] <= 'Z') {
        return value;
    }
    return "XX";
}

/* Header values are client-influenced: keep only letters, digits and '-' for the JSON. */
static const char *plain_or(const char *value, const char *fallback) {
    if (value == NULL || *value == '\0') {
        return fallback;
    }
    for (const char *p = value; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) {
            return fallback;
        }
    }
    return value;
}

/* Writes `s` (of `len` bytes) as the inside of a JSON string. */
static void json_escaped(const char *s, uint32_t len) {
    for (uint32_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
}

static int failed(uint32_t code, const char *what) {
    static char why[512];
    uint32_t len = 0;
    if (edge_http_error_message(why, sizeof why, &len) != EDGE_HTTP_OK || len > sizeof why) {
        len = 0;
    }
    printf("status: 502\ncontent-type: application/json\n\n{\"error\": \"%s\", \"code\": %u, \"message\": \"", what,
           (unsigned)code);
    json_escaped(why, len);
    printf("\"}\n");
    return 0;
}

int main(void) {
    static char out_buffer[8192];
    setvbuf(stdout, out_buffer, _IOFBF, sizeof out_buffer);

    const char *country = country_code(getenv("HTTP_CF_IPCOUNTRY"));
    const char *region = plain_or(getenv("HTTP_X_EDGE_REGION"), "unknown");
    const char *fetch = getenv("WEATHER_FETCH");
    if (fetch != NULL && strcmp(fetch, "off") == 0) {
        printf("content-type: application/json\nvary: cf-ipcountry\nx-upstream-cache: NONE\n\n");
        printf("{\"country\": \"%s\", \"region\": \"%s\", \"upstream_cache\": \"NONE\", \"weather\": "
               "{\"country\": \"%s\", \"city\": \"unknown\", \"sky\": \"sunny\", \"temperature_c\": 20}}\n",
               country, region, country);
        return 0;
    }
    char url[64];
    snprintf(url, sizeof url, "/shop/weather?country=%s", country);

    /* One host call: the answer and its body (a few hundred bytes) come back together. */
    edge_http_response res;
    static char body[4096];
    uint32_t code = edge_http_get(url, 0, &res, body, sizeof body);
    if (code != EDGE_HTTP_OK) {
        return failed(code, "the weather service cannot be reached");
    }
    static const char *const CACHE[] = {"NONE", "HIT", "MISS", "STALE", "REVALIDATED"};
    const char *cache = res.cache < sizeof CACHE / sizeof CACHE[0] ? CACHE[res.cache] : "NONE";
    uint32_t status = res.status, body_len = res.body_copied;
    if (res.body_copied < res.body_size) {
        printf("status: 502\ncontent-type: application/json\n\n{\"error\": \"the weather answer is too large\"}\n");
        return 0;
    }
    if (status != 200) {
        printf("status: 502\ncontent-type: application/json\n\n"
               "{\"error\": \"the weather service answered %u\"}\n",
               (unsigned)status);
        return 0;
    }
    printf("content-type: application/json\nvary: cf-ipcountry\nx-upstream-cache: %s\n\n", cache);
    printf("{\"country\": \"%s\", \"region\": \"%s\", \"upstream_cache\": \"%s\", \"weather\": %.*s}\n", country,
           region, cache, (int)body_len, body);
    return 0;
}
