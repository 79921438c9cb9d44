/* Greeting table shared by geo-hello (WAGI, C) and geo-hello-reactor.
 *
 * Freestanding on purpose (no libc): the reactor build has none. Country codes are the
 * ISO 3166-1 alpha-2 codes the edge node puts in cf-ipcountry.
 */
#ifndef EDGE_GREETINGS_H
#define EDGE_GREETINGS_H

#include <stddef.h>

struct greeting {
    const char *countries; /* space-separated ISO codes */
    const char *language;  /* BCP 47 tag, for content-language */
    const char *text;      /* UTF-8 */
};

static const struct greeting GREETINGS[] = {
    {"KR", "ko", "\xec\x95\x88\xeb\x85\x95\xed\x95\x98\xec\x84\xb8\xec\x9a\x94"}, /* 안녕하세요 */
    {"JP", "ja", "\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf"}, /* こんにちは */
    {"US GB AU CA NZ IE", "en", "Hello"},
    {"DE AT CH", "de", "Hallo"},
    {"FR BE LU MC", "fr", "Bonjour"},
    {"BR PT", "pt", "Ol\xc3\xa1"},                        /* Olá */
    {"CN TW HK SG", "zh", "\xe4\xbd\xa0\xe5\xa5\xbd"},      /* 你好 */
    {"ES MX AR CO CL", "es", "Hola"},
    {"IT", "it", "Ciao"},
    {"IN", "hi", "\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87"}, /* नमस्ते */
};

static const struct greeting DEFAULT_GREETING = {"", "en", "Hello"};

/* True when `code` (length `len`) is two ASCII upper-case letters. */
static inline int greeting_valid_country(const char *code, size_t len) {
    return len == 2 && code[0] >= 'A' && code[0] <= 'Z' && code[1] >= 'A' && code[1] <= 'Z';
}

/* The greeting for a two-letter upper-case country code, or the default one. */
static inline const struct greeting *greeting_for(const char *code, size_t len) {
    if (!greeting_valid_country(code, len)) {
        return &DEFAULT_GREETING;
    }
    for (size_t i = 0; i < sizeof GREETINGS / sizeof GREETINGS[0]; i++) {
        const char *p = GREETINGS[i].countries;
        while (*p) {
            if (p[0] == code[0] && p[1] == code[1]) {
                return &GREETINGS[i];
            }
            p += 2;
            while (*p == ' ') {
                p++;
            }
        }
    }
    return &DEFAULT_GREETING;
}

/* Does an Accept header value ask for JSON? "application/json" with a non-zero q wins. */
static inline int accept_wants_json(const char *accept, size_t len) {
    static const char needle[] = "application/json";
    const size_t n = sizeof needle - 1;
    for (size_t i = 0; i + n <= len; i++) {
        size_t j = 0;
        while (j < n && (accept[i + j] | 0x20) == (needle[j] | 0x20)) {
            j++;
        }
        if (j != n) {
            continue;
        }
        /* Look at this media range's parameters for q=0 (explicitly unwanted). */
        size_t k = i + n;
        while (k < len && accept[k] != ',') {
            if (accept[k] == 'q' && k + 2 < len && accept[k + 1] == '=') {
                size_t m = k + 2;
                int zero = 1;
                while (m < len && accept[m] != ',' && accept[m] != ';' && accept[m] != ' ') {
                    if (accept[m] != '0' && accept[m] != '.') {
                        zero = 0;
                    }
                    m++;
                }
                return !zero;
            }
            k++;
        }
        return 1;
    }
    return 0;
}

#endif
