/* geo-hello over WAGI: greets the client in the language of its country.
 *
 * The edge node sets cf-ipcountry and x-edge-region on every request; WAGI hands them to
 * us as HTTP_CF_IPCOUNTRY and HTTP_X_EDGE_REGION. Answers JSON when Accept asks for it,
 * otherwise UTF-8 text. `vary` tells caches that the answer depends on both headers.
 * GREETING_DEFAULT (granted by the manifest) overrides the greeting for unknown countries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greetings.h"

/* Writes `s` as a JSON string body (without quotes): escapes quotes, backslashes, controls. */
static void json_escaped(const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
}

/* Header values are client-influenced: keep only printable ASCII for the text answer. */
static const char *safe_or(const char *value, const char *fallback) {
    if (value == NULL || *value == '\0') {
        return fallback;
    }
    for (const char *p = value; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
            return fallback;
        }
    }
    return value;
}

int main(void) {
    /* Fully buffered: the whole CGI answer leaves in one write at exit. By default stdio
     * line-buffers stdout until it has asked whether it is a terminal, so the first line
     * went out in writes of its own: three WASI fd_write calls (and system calls) where
     * one will do (docs/abi.md). */
    static char out_buffer[4096];
    setvbuf(stdout, out_buffer, _IOFBF, sizeof out_buffer);

    const char *country = getenv("HTTP_CF_IPCOUNTRY");
    const char *region = safe_or(getenv("HTTP_X_EDGE_REGION"), "unknown");
    const char *accept = getenv("HTTP_ACCEPT");
    const char *fallback = getenv("GREETING_DEFAULT");

    size_t country_len = country ? strlen(country) : 0;
    const struct greeting *g = greeting_for(country ? country : "", country_len);
    const char *text = g->text;
    if (g == &DEFAULT_GREETING && fallback != NULL && *fallback != '\0') {
        text = fallback;
    }
    const char *shown_country = greeting_valid_country(country ? country : "", country_len) ? country : "unknown";

    printf("vary: accept, cf-ipcountry, x-edge-region\n");
    printf("content-language: %s\n", g->language);
    printf("x-edge-region: %s\n", region);
    if (accept != NULL && accept_wants_json(accept, strlen(accept))) {
        printf("content-type: application/json\n\n");
        printf("{\"greeting\":\"");
        json_escaped(text);
        printf("\",\"language\":\"%s\",\"country\":\"%s\",\"region\":\"", g->language, shown_country);
        json_escaped(region);
        printf("\"}\n");
    } else {
        printf("content-type: text/plain; charset=utf-8\n\n");
        printf("%s! Your country: %s. Served by edge region %s.\n", text, shown_country, region);
    }
    return 0;
}
