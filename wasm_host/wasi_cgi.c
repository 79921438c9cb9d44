/*
 * The WASI preview-1 calls a CGI command makes, implemented natively for the WAGI ABI.
 *
 * Why: wasmtime's own WASI costs a WAGI request ~15 us of its ~32 (bench/README.md,
 * "WASI for CGI commands"): a WasiCtx built per request, the environment handed over
 * string by string, stdout opened as a file and read back. A CGI command needs far less:
 * its arguments and environment, stdin from a buffer, stdout into a buffer, the clocks,
 * random bytes and exit. These functions do exactly that against a per-request state
 * that is the store's data (wasmtime_context_get_data), so a linker holding them can be
 * pre-linked once (InstancePre) and a request configures nothing but this state.
 *
 * A module importing any other WASI function runs on wasmtime's WASI instead
 * (wasm_host/wasi_cgi.py decides). Nothing here opens a file or a socket: there are no
 * preopened directories and fd 0-2 are the only descriptors.
 *
 * Every guest pointer is checked against the memory's current size before it is read or
 * written (all arithmetic in 64 bits, so ptr + len cannot wrap), and against the alignment
 * of what it points at. These functions behave as wasmtime's WASI (wasmtime 51's preview-1
 * implementation, which the tests run beside them) wherever that is reasonable: they
 * trap where it traps (a pointer outside memory or misaligned, an unknown clock or whence,
 * an exit status of 126 or more), return the errno it returns, treat a zero-length region
 * as valid wherever it points, and read or write only the first non-empty iovec of a list.
 * docs/abi.md ("WASI") lists the few deliberate differences and why;
 * tests/wasm_host/test_wasi_differential.py checks each case on both.
 *
 * Built by tools/accel.py as a plain shared library and loaded with ctypes. It calls
 * wasmtime through the function pointers edge_wasi_init receives, so it does not link
 * against libwasmtime.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* wasmtime's C API, as far as it is used here (layouts checked in edge_wasi_init). */
typedef struct wasm_trap_t wasm_trap_t;
typedef struct wasmtime_caller wasmtime_caller_t;
typedef struct wasmtime_context wasmtime_context_t;
typedef union {
    int32_t i32;
    int64_t i64;
    uint8_t v128[16];
} val_raw_t;
typedef struct {
    uint8_t kind;
    union {
        uint64_t align;
        uint8_t bytes[24];
    } of;
} extern_t;
#define EXTERN_MEMORY 3

typedef struct {
    bool (*caller_export_get)(wasmtime_caller_t *, const char *, size_t, extern_t *);
    wasmtime_context_t *(*caller_context)(wasmtime_caller_t *);
    void *(*context_get_data)(const wasmtime_context_t *);
    uint8_t *(*memory_data)(const wasmtime_context_t *, const void *);
    size_t (*memory_data_size)(const wasmtime_context_t *, const void *);
    wasm_trap_t *(*trap_new)(const char *, size_t);
} wasmtime_api_t;

static wasmtime_api_t api;
static bool initialised;

/* WASI preview-1 constants. */
enum {
    ERRNO_SUCCESS = 0,
    ERRNO_BADF = 8,
    ERRNO_INVAL = 28,
    ERRNO_IO = 29,
    ERRNO_SPIPE = 70,
};
enum { FILETYPE_UNKNOWN = 0 };
/* Most iovecs one fd_read/fd_write takes (POSIX's IOV_MAX): a guest cannot keep the host
 * busy past its deadline in one call (host code is not interrupted by epochs). */
#define MAX_IOVECS 1024
/* Most bytes one random_get fills. Host code is not interrupted by the epoch deadline, and
 * the kernel's CSPRNG gives ~400 MB/s on the project's machine (2026-12-05: 256 KiB in
 * 0.65 ms, 1 MiB in 2.7-6.7 ms), so 256 KiB keeps one call near a millisecond: a guest
 * looping over a 256 MiB buffer is stopped within about a millisecond of its deadline.
 * wasmtime's WASI traps above 64 MiB; this traps above the cap (getentropy's limit is
 * 256 bytes, Rust's HashMap asks for 16: no real program comes near it). */
#define MAX_RANDOM_BYTES (256u * 1024u)
/* proc_exit statuses at and above this trap, as in wasmtime's WASI: 126 and up mean
 * "could not run" and signals to a POSIX shell. */
#define MAX_EXIT_STATUS 126
#define RIGHTS_FD_READ (1ull << 1)
#define RIGHTS_FD_WRITE (1ull << 6)

/* What the host reads after a run: the head of every state, mirrored by
 * wasm_host/wasi_cgi.py's CgiOutcome. */
typedef struct {
    uint8_t *out;           /* stdout so far */
    uint64_t out_len;
    uint64_t out_attempted; /* bytes the guest tried to write to stdout */
    int32_t exit_code;
    uint8_t exited;         /* proc_exit was called */
    uint8_t overflowed;     /* stdout went over out_max: the run was stopped */
} outcome_t;

typedef struct {
    outcome_t outcome;
    uint64_t out_cap;
    uint64_t out_max;
    uint8_t *env; /* "NAME=value\0" * env_count */
    uint64_t env_len, env_cap;
    uint32_t env_count;
    uint8_t *args; /* "arg\0" * args_count */
    uint64_t args_len, args_cap;
    uint32_t args_count;
    uint8_t *in; /* stdin */
    uint64_t in_len, in_cap, in_pos;
    uint8_t closed;      /* bit n: fd n was closed */
    uint64_t clock_zero; /* CLOCK_MONOTONIC at reset: the guest's monotonic clock starts here */
} state_t;

/* A pooled state gives back a buffer above this size once a smaller request follows, so
 * one large request does not pin its memory. */
#define SHRINK_ABOVE (64u * 1024u)

/* Copy src into *buf, growing it to fit (or shrinking it, see SHRINK_ABOVE). */
static bool copy_into(uint8_t **buf, uint64_t *cap, const uint8_t *src, uint64_t len) {
    if (len > *cap || (*cap > SHRINK_ABOVE && len <= SHRINK_ABOVE)) {
        uint64_t want = len < 4096 ? 4096 : len;
        uint8_t *grown = realloc(*buf, want);
        if (!grown) return false;
        *buf = grown;
        *cap = want;
    }
    if (len) memcpy(*buf, src, len);
    return true;
}

int edge_wasi_init(const wasmtime_api_t *functions, size_t extern_size, size_t extern_of_offset,
                   size_t val_raw_size, size_t outcome_size) {
    if (extern_size != sizeof(extern_t) || extern_of_offset != offsetof(extern_t, of) ||
        val_raw_size != sizeof(val_raw_t) || outcome_size != sizeof(outcome_t))
        return -1;
    if (!initialised) { /* once: callbacks on other threads may be reading it */
        api = *functions;
        initialised = true;
    }
    return 0;
}

void *edge_wasi_state_new(void) { return calloc(1, sizeof(state_t)); }

void edge_wasi_state_free(void *opaque) {
    state_t *state = opaque;
    if (!state) return;
    free(state->outcome.out);
    free(state->env);
    free(state->args);
    free(state->in);
    free(state);
}

/* Ready a state for one request: copies of the inputs, an empty stdout. 0, or -1 when out
 * of memory. Large buffers from an earlier request are given back. */
int edge_wasi_state_reset(void *opaque, const uint8_t *env, uint64_t env_len, uint32_t env_count,
                          const uint8_t *args, uint64_t args_len, uint32_t args_count,
                          const uint8_t *in, uint64_t in_len, uint64_t out_max) {
    state_t *state = opaque;
    if (!copy_into(&state->env, &state->env_cap, env, env_len) ||
        !copy_into(&state->args, &state->args_cap, args, args_len) ||
        !copy_into(&state->in, &state->in_cap, in, in_len))
        return -1;
    if (state->out_cap > SHRINK_ABOVE) {
        free(state->outcome.out);
        state->outcome.out = NULL;
        state->out_cap = 0;
    }
    state->env_len = env_len;
    state->env_count = env_count;
    state->args_len = args_len;
    state->args_count = args_count;
    state->in_len = in_len;
    state->in_pos = 0;
    state->out_max = out_max;
    state->closed = 0;
    /* The guest's monotonic clock counts from this request's start, as wasmtime's WASI
     * counts from its context's creation: the host's uptime is none of its business. */
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) return -1;
    state->clock_zero = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
    state->outcome.out_len = 0;
    state->outcome.out_attempted = 0;
    state->outcome.exit_code = 0;
    state->outcome.exited = 0;
    state->outcome.overflowed = 0;
    return 0;
}

static const char OUT_OF_BOUNDS[] = "pointer out of bounds in a WASI call";
static const char MISALIGNED[] = "pointer not aligned in a WASI call";
static const char BAD_CLOCK[] = "invalid clock id in a WASI call";
static const char BAD_WHENCE[] = "invalid enum value Whence in fd_seek";
static const char BAD_EXIT[] = "exit with invalid exit status outside of [0..126)";
static const char TOO_RANDOM[] = "random_get of more than 256 KiB in one call (ask in pieces)";

static wasm_trap_t *trap(const char *message, size_t len) { return api.trap_new(message, len); }
#define TRAP(message) return trap(message, sizeof(message) - 1)
/* A guest range outside memory traps, as in wasmtime's WASI; so does a pointer to a value
 * that is not aligned to its size (witx: "if a misaligned pointer is passed to a function,
 * the function shall trap"). */
#define CHECK(guest, ptr, len)                                      \
    do {                                                            \
        if (!in_bounds((guest), (ptr), (len))) TRAP(OUT_OF_BOUNDS); \
    } while (0)
#define CHECK_ALIGNED(guest, ptr, len, align)            \
    do {                                                 \
        CHECK(guest, ptr, len); /* wasmtime's order */   \
        if ((ptr) & ((align) - 1u)) TRAP(MISALIGNED);    \
    } while (0)

/* The calling instance's memory and this request's state. */
typedef struct {
    uint8_t *base;
    uint64_t size;
    state_t *state;
} guest_t;

static const char NO_MEMORY[] = "a WASI call needs a memory export named \"memory\"";

static wasm_trap_t *enter(wasmtime_caller_t *caller, guest_t *guest) {
    extern_t item;
    wasmtime_context_t *context = api.caller_context(caller);
    guest->state = api.context_get_data(context);
    if (!api.caller_export_get(caller, "memory", 6, &item) || item.kind != EXTERN_MEMORY)
        TRAP(NO_MEMORY);
    guest->base = api.memory_data(context, &item.of);
    guest->size = api.memory_data_size(context, &item.of);
    return NULL;
}

/* A zero-length range is valid wherever it points: nothing is read or written there (as
 * in wasmtime's WASI, where random_get(anywhere, 0) succeeds). */
static inline bool in_bounds(const guest_t *guest, uint32_t ptr, uint64_t len) {
    return len == 0 || (uint64_t)ptr + len <= guest->size;
}

static inline uint32_t arg_u32(const val_raw_t *args, size_t i) { return (uint32_t)args[i].i32; }

static inline void store_u32(uint8_t *at, uint32_t value) { memcpy(at, &value, 4); }
static inline void store_u64(uint8_t *at, uint64_t value) { memcpy(at, &value, 8); }
static inline uint32_t load_u32(const uint8_t *at) {
    uint32_t value;
    memcpy(&value, at, 4);
    return value;
}

#define ENTER(guest)                                   \
    guest_t guest;                                     \
    do {                                               \
        wasm_trap_t *trap_ = enter(caller, &guest);    \
        if (trap_) return trap_;                       \
    } while (0)
#define RETURN_ERRNO(errno_value)     \
    do {                              \
        args[0].i32 = (errno_value);  \
        return NULL;                  \
    } while (0)

/* (count_ptr, size_ptr) for a "s\0" * count list of size bytes. */
static wasm_trap_t *list_sizes(const guest_t *guest, val_raw_t *args, uint32_t count, uint64_t size) {
    uint32_t count_ptr = arg_u32(args, 0), size_ptr = arg_u32(args, 1);
    CHECK_ALIGNED(guest, count_ptr, 4, 4);
    CHECK_ALIGNED(guest, size_ptr, 4, 4);
    store_u32(guest->base + count_ptr, count);
    store_u32(guest->base + size_ptr, (uint32_t)size);
    RETURN_ERRNO(ERRNO_SUCCESS);
}

/* The strings at buf_ptr, a pointer to each at list_ptr (as args_get/environ_get want). */
static wasm_trap_t *list_get(const guest_t *guest, val_raw_t *args, const uint8_t *blob, uint64_t len,
                             uint32_t count) {
    uint32_t list_ptr = arg_u32(args, 0), buf_ptr = arg_u32(args, 1);
    CHECK_ALIGNED(guest, list_ptr, 4ull * count, count ? 4 : 1);
    CHECK(guest, buf_ptr, len);
    if (len) memcpy(guest->base + buf_ptr, blob, len);
    uint64_t offset = 0;
    for (uint32_t i = 0; i < count && offset < len; i++) {
        store_u32(guest->base + list_ptr + 4ull * i, (uint32_t)(buf_ptr + offset));
        const uint8_t *end = memchr(blob + offset, 0, len - offset);
        offset = end ? (uint64_t)(end - blob) + 1 : len;
    }
    RETURN_ERRNO(ERRNO_SUCCESS);
}

wasm_trap_t *edge_wasi_args_sizes_get(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    ENTER(guest);
    state_t *s = guest.state;
    return list_sizes(&guest, args, s->args_count, s->args_len);
}

wasm_trap_t *edge_wasi_args_get(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    ENTER(guest);
    state_t *s = guest.state;
    return list_get(&guest, args, s->args, s->args_len, s->args_count);
}

wasm_trap_t *edge_wasi_environ_sizes_get(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    ENTER(guest);
    state_t *s = guest.state;
    return list_sizes(&guest, args, s->env_count, s->env_len);
}

wasm_trap_t *edge_wasi_environ_get(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    ENTER(guest);
    state_t *s = guest.state;
    return list_get(&guest, args, s->env, s->env_len, s->env_count);
}

static bool is_open(const state_t *state, uint32_t fd) { return fd <= 2 && !(state->closed & (1u << fd)); }

static const char OUTPUT_LIMIT[] = "stdout went over the module's output limit";

static bool append_out(state_t *state, const uint8_t *data, uint64_t len) {
    outcome_t *o = &state->outcome;
    if (o->out_len + len > state->out_cap) {
        uint64_t want = state->out_cap ? state->out_cap : 4096;
        while (want < o->out_len + len) want *= 2;
        if (want > state->out_max) want = state->out_max;
        uint8_t *grown = realloc(o->out, want);
        if (!grown) return false;
        o->out = grown;
        state->out_cap = want;
    }
    memcpy(o->out + o->out_len, data, len);
    o->out_len += len;
    return true;
}

/* The first iovec of the list at iovs whose length is not zero, as wasmtime's WASI takes
 * it (a short read or write, which POSIX allows and libc loops on): later iovecs are not
 * looked at, nor are empty ones' buffers. *buf and *len are 0 when every iovec is empty.
 * Each iovec read is checked (aligned to 4, inside memory) before it is used. */
static wasm_trap_t *first_iovec(const guest_t *guest, uint32_t iovs, uint32_t count, uint32_t *buf,
                                uint32_t *len) {
    *buf = 0;
    *len = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t at = (uint64_t)iovs + 8ull * i;
        if (at > UINT32_MAX) TRAP(OUT_OF_BOUNDS);
        CHECK_ALIGNED(guest, (uint32_t)at, 8, 4);
        uint32_t size = load_u32(guest->base + at + 4);
        if (!size) continue;
        *buf = load_u32(guest->base + at);
        *len = size;
        CHECK(guest, *buf, size);
        break;
    }
    return NULL;
}

/* fd_write(fd, iovs, iovs_len, nwritten_ptr): fd 1 is kept, fd 2 is discarded. */
wasm_trap_t *edge_wasi_fd_write(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    ENTER(guest);
    state_t *s = guest.state;
    uint32_t fd = arg_u32(args, 0), iovs = arg_u32(args, 1), count = arg_u32(args, 2),
             nwritten_ptr = arg_u32(args, 3), buf, len;
    if (!is_open(s, fd) || fd == 0) RETURN_ERRNO(ERRNO_BADF);
    if (count > MAX_IOVECS) RETURN_ERRNO(ERRNO_INVAL);
    wasm_trap_t *bad = first_iovec(&guest, iovs, count, &buf, &len);
    if (bad) return bad;
    CHECK_ALIGNED(&guest, nwritten_ptr, 4, 4);
    if (fd == 1 && len) {
        s->outcome.out_attempted += len;
        if (s->outcome.out_len + len > s->out_max) {
            s->outcome.overflowed = 1;
            TRAP(OUTPUT_LIMIT);
        }
        if (!append_out(s, guest.base + buf, len)) RETURN_ERRNO(ERRNO_IO);
    }
    store_u32(guest.base + nwritten_ptr, len);
    RETURN_ERRNO(ERRNO_SUCCESS);
}

/* fd_read(fd, iovs, iovs_len, nread_ptr): fd 0 reads the request body. */
wasm_trap_t *edge_wasi_fd_read(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    ENTER(guest);
    state_t *s = guest.state;
    uint32_t fd = arg_u32(args, 0), iovs = arg_u32(args, 1), count = arg_u32(args, 2),
             nread_ptr = arg_u32(args, 3), buf, len;
    if (!is_open(s, fd) || fd != 0) RETURN_ERRNO(ERRNO_BADF);
    if (count > MAX_IOVECS) RETURN_ERRNO(ERRNO_INVAL);
    wasm_trap_t *bad = first_iovec(&guest, iovs, count, &buf, &len);
    if (bad) return bad;
    CHECK_ALIGNED(&guest, nread_ptr, 4, 4);
    uint64_t take = s->in_len - s->in_pos;
    if (take > len) take = len;
    if (take) memcpy(guest.base + buf, s->in + s->in_pos, take);
    s->in_pos += take;
    store_u32(guest.base + nread_ptr, (uint32_t)take);
    RETURN_ERRNO(ERRNO_SUCCESS);
}

wasm_trap_t *edge_wasi_fd_close(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    ENTER(guest);
    uint32_t fd = arg_u32(args, 0);
    if (!is_open(guest.state, fd)) RETURN_ERRNO(ERRNO_BADF);
    guest.state->closed |= (uint8_t)(1u << fd);
    RETURN_ERRNO(ERRNO_SUCCESS);
}

/* fd_seek(fd, offset: i64, whence, newoffset_ptr): stdio are streams. A whence that is
 * not set/cur/end traps before the descriptor is looked at, as wasmtime's WASI decodes
 * its arguments first. */
wasm_trap_t *edge_wasi_fd_seek(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    ENTER(guest);
    if (arg_u32(args, 2) > 2) TRAP(BAD_WHENCE);
    RETURN_ERRNO(is_open(guest.state, arg_u32(args, 0)) ? ERRNO_SPIPE : ERRNO_BADF);
}

/* fd_fdstat_get(fd, buf): a stream that is not a terminal, so libc buffers it fully. */
wasm_trap_t *edge_wasi_fd_fdstat_get(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    ENTER(guest);
    uint32_t fd = arg_u32(args, 0), buf = arg_u32(args, 1);
    if (!is_open(guest.state, fd)) RETURN_ERRNO(ERRNO_BADF);
    CHECK_ALIGNED(&guest, buf, 24, 8);
    uint8_t *stat = guest.base + buf;
    memset(stat, 0, 24);
    stat[0] = FILETYPE_UNKNOWN;
    store_u64(stat + 8, fd == 0 ? RIGHTS_FD_READ : RIGHTS_FD_WRITE);
    RETURN_ERRNO(ERRNO_SUCCESS);
}

/* fd_prestat_get / fd_prestat_dir_name: no preopened directories, ever. */
wasm_trap_t *edge_wasi_fd_prestat_get(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    RETURN_ERRNO(ERRNO_BADF);
}

wasm_trap_t *edge_wasi_fd_prestat_dir_name(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    RETURN_ERRNO(ERRNO_BADF);
}

static const char EXITED[] = "the module called proc_exit";

/* proc_exit(code): ends the run; the host reads the code from the outcome. A status of
 * 126 or more (or negative) is a plain trap, as in wasmtime's WASI. */
wasm_trap_t *edge_wasi_proc_exit(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    if (arg_u32(args, 0) >= MAX_EXIT_STATUS) TRAP(BAD_EXIT);
    state_t *s = api.context_get_data(api.caller_context(caller));
    s->outcome.exit_code = args[0].i32;
    s->outcome.exited = 1;
    TRAP(EXITED);
}

/* The host clock behind a WASI clock id. The CPU-time clocks (2, 3) are refused with
 * EBADF, as wasmtime's WASI does: they would tell a guest about the host process. */
enum clock_choice { CLOCK_OK, CLOCK_REFUSED, CLOCK_UNKNOWN };
static enum clock_choice clock_for(uint32_t id, clockid_t *clock) {
    switch (id) {
        case 0: *clock = CLOCK_REALTIME; return CLOCK_OK;
        case 1: *clock = CLOCK_MONOTONIC; return CLOCK_OK;
        case 2:
        case 3: return CLOCK_REFUSED;
        default: return CLOCK_UNKNOWN;
    }
}

#define CHOOSE_CLOCK(id, clock)                                   \
    do {                                                          \
        enum clock_choice choice_ = clock_for((id), (clock));     \
        if (choice_ == CLOCK_UNKNOWN) TRAP(BAD_CLOCK);            \
        if (choice_ == CLOCK_REFUSED) RETURN_ERRNO(ERRNO_BADF);   \
    } while (0)

/* Store what ``query`` (clock_gettime or clock_getres) says of clock args[0], in
 * nanoseconds, at the pointer args[out_index]; with from_zero, the monotonic clock counts
 * from the request's clock_zero. */
static wasm_trap_t *clock_answer(wasmtime_caller_t *caller, val_raw_t *args, size_t out_index,
                                 int (*query)(clockid_t, struct timespec *), bool from_zero) {
    ENTER(guest);
    uint32_t out_ptr = arg_u32(args, out_index);
    clockid_t clock;
    struct timespec value;
    CHOOSE_CLOCK(arg_u32(args, 0), &clock);
    CHECK_ALIGNED(&guest, out_ptr, 8, 8);
    if (query(clock, &value) != 0) RETURN_ERRNO(ERRNO_IO);
    uint64_t ns = (uint64_t)value.tv_sec * 1000000000ull + (uint64_t)value.tv_nsec;
    if (from_zero && clock == CLOCK_MONOTONIC) ns -= guest.state->clock_zero;
    store_u64(guest.base + out_ptr, ns);
    RETURN_ERRNO(ERRNO_SUCCESS);
}

/* clock_time_get(id, precision: i64, time_ptr) */
wasm_trap_t *edge_wasi_clock_time_get(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    return clock_answer(caller, args, 2, clock_gettime, true);
}

/* clock_res_get(id, resolution_ptr) */
wasm_trap_t *edge_wasi_clock_res_get(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    return clock_answer(caller, args, 1, clock_getres, false);
}

/* random_get(buf, len): the kernel's CSPRNG, as wasmtime's WASI gives, at most
 * MAX_RANDOM_BYTES a call (checked first, as wasmtime checks its own cap). */
wasm_trap_t *edge_wasi_random_get(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    ENTER(guest);
    uint32_t buf = arg_u32(args, 0), len = arg_u32(args, 1);
    if (len > MAX_RANDOM_BYTES) TRAP(TOO_RANDOM);
    CHECK(&guest, buf, len);
    for (uint32_t done = 0; done < len;) {
        ssize_t got = getrandom(guest.base + buf + done, len - done, 0);
        if (got < 0 && errno == EINTR) continue; /* a signal before any byte: ask again */
        if (got <= 0) RETURN_ERRNO(ERRNO_IO);
        done += (uint32_t)got;
    }
    RETURN_ERRNO(ERRNO_SUCCESS);
}

wasm_trap_t *edge_wasi_sched_yield(void *env, wasmtime_caller_t *caller, val_raw_t *args, size_t n) {
    RETURN_ERRNO(ERRNO_SUCCESS);
}
