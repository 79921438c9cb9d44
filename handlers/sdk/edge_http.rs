//! edge_http.rs: outbound HTTP for EdgeCDN handlers in Rust, both ABIs (docs/abi.md,
//! "Outbound HTTP"). Copy it into a crate (`mod edge_http;`): std only, no dependencies.
//!
//! The host imports of the `edge_http` module and a safe layer over them. A module that
//! imports them is accepted only when its manifest grants at least one host:
//!
//! ```toml
//! [module.weather]
//! allowed_outbound_hosts = ["http://self", "https://api.example.com"]
//! outbound_requests = 4        # per invocation (default 10)
//! outbound_bytes = "256KiB"    # bodies sent and received, per invocation (default 4MiB)
//! outbound_timeout = "500ms"   # per request, within the module's own timeout (default 5s)
//! ```
//!
//! ```ignore
//! let answer = edge_http::get("/shop/weather?country=KR")?;   // an origin route of this app
//! let cache = answer.header("x-cache");                         // HIT, MISS, STALE, REVALIDATED
//! let body = answer.body();
//! ```
//!
//! Every URL (and every redirect the host follows) is checked against the grant before
//! anything leaves the node; a refusal is an `Error` whose `code` is `NOT_ALLOWED` (or
//! `BLOCKED_ADDRESS`, ...) and whose `message` says why. Requests go through the node's HTTP
//! cache unless `BYPASS_CACHE` is set. A call blocks the guest for at most what is left of
//! its deadline; the host runs such handlers on a worker thread, never on the node's loop.
//! Each call crosses into the host's Python, so the layer makes few: `send` returns the
//! status, the cache outcome and the body's first 16 KiB with the handle (one call for a
//! small answer), and `body` reads on only when there is more.

#![allow(dead_code)]

/// Error codes (wasm_host/outbound.py ERRORS, handlers/sdk/edge_http.h).
pub const OK: u32 = 0;
pub const INVALID_HANDLE: u32 = 1;
pub const MEMORY_ACCESS: u32 = 2;
pub const BUFFER_TOO_SMALL: u32 = 3;
pub const HEADER_NOT_FOUND: u32 = 4;
pub const INVALID_URL: u32 = 5;
pub const NOT_ALLOWED: u32 = 6;
pub const BLOCKED_ADDRESS: u32 = 7;
pub const TOO_MANY_REQUESTS: u32 = 8;
pub const TOO_MANY_BYTES: u32 = 9;
pub const TIMEOUT: u32 = 10;
pub const FAILED: u32 = 11;
pub const UNAVAILABLE: u32 = 12;
pub const INVALID_REQUEST: u32 = 13;
pub const TOO_MANY_REDIRECTS: u32 = 14;
pub const SELF_NOT_ORIGIN: u32 = 15;

/// Flag of `send`: do not answer from, nor store in, the node's HTTP cache.
pub const BYPASS_CACHE: u32 = 1;

mod raw {
    #[link(wasm_import_module = "edge_http")]
    extern "C" {
        pub fn send(
            method: *const u8,
            method_len: u32,
            url: *const u8,
            url_len: u32,
            headers: *const u8,
            headers_len: u32,
            body: *const u8,
            body_len: u32,
            flags: u32,
            response_out: *mut [u32; 5],
            buf: *mut u8,
            buf_len: u32,
        ) -> u32;
        pub fn status(handle: u32, status_out: *mut u32) -> u32;
        pub fn headers_get(handle: u32, buf: *mut u8, buf_len: u32, written: *mut u32) -> u32;
        pub fn header_get(
            handle: u32,
            name: *const u8,
            name_len: u32,
            buf: *mut u8,
            buf_len: u32,
            written: *mut u32,
        ) -> u32;
        pub fn body_read(handle: u32, buf: *mut u8, buf_len: u32, read: *mut u32) -> u32;
        pub fn close(handle: u32) -> u32;
        pub fn error_message(buf: *mut u8, buf_len: u32, written: *mut u32) -> u32;
    }
}

/// A failed call: its code, and the host's explanation.
#[derive(Debug, Clone)]
pub struct Error {
    pub code: u32,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "edge_http error {}: {}", self.code, self.message)
    }
}

fn last_error(code: u32) -> Error {
    let mut buf = vec![0u8; 512];
    let mut written = 0u32;
    let mut status = unsafe { raw::error_message(buf.as_mut_ptr(), buf.len() as u32, &mut written) };
    if status == BUFFER_TOO_SMALL {
        buf.resize(written as usize, 0);
        status = unsafe { raw::error_message(buf.as_mut_ptr(), buf.len() as u32, &mut written) };
    }
    let message = if status == OK {
        String::from_utf8_lossy(&buf[..written as usize]).into_owned()
    } else {
        String::new()
    };
    Error { code, message }
}

fn check(code: u32) -> Result<(), Error> {
    if code == OK {
        Ok(())
    } else {
        Err(last_error(code))
    }
}

/// How the node's HTTP cache answered (`Response::cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    None,
    Hit,
    Miss,
    Stale,
    Revalidated,
}

/// An answer: its status, the cache outcome, and a handle to read its headers and the
/// rest of its body through.
pub struct Response {
    handle: u32,
    pub status: u16,
    pub cache: Cache,
    size: usize,
    first: Vec<u8>,
}

const FIRST_BYTES: usize = 16 * 1024;

/// Send `method url` with `headers` (`(name, value)` pairs) and `body`; `flags` 0 or
/// `BYPASS_CACHE`. `url` is absolute (`https://api.example.com/x`) or a path of one of the
/// app's origin routes (`/shop/weather?country=KR`, granted by `http://self`).
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8], flags: u32) -> Result<Response, Error> {
    let mut block = String::new();
    for (name, value) in headers {
        block.push_str(name);
        block.push_str(": ");
        block.push_str(value);
        block.push('\n');
    }
    let mut out = [0u32; 5];
    let mut first = vec![0u8; FIRST_BYTES];
    check(unsafe {
        raw::send(
            method.as_ptr(),
            method.len() as u32,
            url.as_ptr(),
            url.len() as u32,
            block.as_ptr(),
            block.len() as u32,
            body.as_ptr(),
            body.len() as u32,
            flags,
            &mut out,
            first.as_mut_ptr(),
            first.len() as u32,
        )
    })?;
    first.truncate(out[4] as usize);
    let cache = match out[2] {
        1 => Cache::Hit,
        2 => Cache::Miss,
        3 => Cache::Stale,
        4 => Cache::Revalidated,
        _ => Cache::None,
    };
    Ok(Response { handle: out[0], status: out[1] as u16, cache, size: out[3] as usize, first })
}

/// `GET url` with no headers, through the node's cache.
pub fn get(url: &str) -> Result<Response, Error> {
    send("GET", url, &[], &[], 0)
}

impl Response {
    /// One header's value (repeats joined by ", "), or None.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut buf = vec![0u8; 256];
        let mut written = 0u32;
        loop {
            let code = unsafe {
                raw::header_get(self.handle, name.as_ptr(), name.len() as u32, buf.as_mut_ptr(), buf.len() as u32, &mut written)
            };
            match code {
                OK => return Some(String::from_utf8_lossy(&buf[..written as usize]).into_owned()),
                BUFFER_TOO_SMALL => buf.resize(written as usize, 0),
                _ => return None,
            }
        }
    }

    /// Every header as `(name, value)`, names in lower case.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut buf = vec![0u8; 1024];
        let mut written = 0u32;
        loop {
            let code = unsafe { raw::headers_get(self.handle, buf.as_mut_ptr(), buf.len() as u32, &mut written) };
            match code {
                OK => break,
                BUFFER_TOO_SMALL => buf.resize(written as usize, 0),
                _ => return Vec::new(),
            }
        }
        String::from_utf8_lossy(&buf[..written as usize])
            .lines()
            .filter_map(|line| line.split_once(": ").map(|(n, v)| (n.to_string(), v.to_string())))
            .collect()
    }

    /// The next chunk of the body after what `send` copied, into `buf`: the bytes read,
    /// fewer than `buf.len()` at the end.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut read = 0u32;
        check(unsafe { raw::body_read(self.handle, buf.as_mut_ptr(), buf.len() as u32, &mut read) })?;
        Ok(read as usize)
    }

    /// The whole body (no further host call when it fit `send`'s 16 KiB).
    pub fn body(&self) -> Vec<u8> {
        let mut body = self.first.clone();
        if body.len() >= self.size {
            return body;
        }
        let mut chunk = vec![0u8; 16 * 1024];
        while let Ok(n) = self.read(&mut chunk) {
            body.extend_from_slice(&chunk[..n]);
            if n < chunk.len() {
                break;
            }
        }
        body
    }
}

impl Response {
    /// Forget the answer now (optional: every answer is dropped when the invocation ends,
    /// and each call is a trip into the host).
    pub fn close(self) {
        unsafe {
            raw::close(self.handle);
        }
    }
}
