//! geo-hello over WAGI, in Rust with std only: the same answers as the C version.
//!
//! The edge node sets `cf-ipcountry` and `x-edge-region`; WAGI passes them as
//! `HTTP_CF_IPCOUNTRY` and `HTTP_X_EDGE_REGION`. JSON when `Accept` asks for it, else text.

use std::env;
use std::io::{self, Write};

/// (countries, language, greeting)
const GREETINGS: &[(&[&str], &str, &str)] = &[
    (&["KR"], "ko", "안녕하세요"),
    (&["JP"], "ja", "こんにちは"),
    (&["US", "GB", "AU", "CA", "NZ", "IE"], "en", "Hello"),
    (&["DE", "AT", "CH"], "de", "Hallo"),
    (&["FR", "BE", "LU", "MC"], "fr", "Bonjour"),
    (&["BR", "PT"], "pt", "Olá"),
    (&["CN", "TW", "HK", "SG"], "zh", "你好"),
    (&["ES", "MX", "AR", "CO", "CL"], "es", "Hola"),
    (&["IT"], "it", "Ciao"),
    (&["IN"], "hi", "नमस्ते"),
];

fn valid_country(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

fn greeting_for(code: &str) -> Option<(&'static str, &'static str)> {
    if !valid_country(code) {
        return None;
    }
    GREETINGS
        .iter()
        .find(|(countries, _, _)| countries.contains(&code))
        .map(|(_, language, text)| (*language, *text))
}

/// True when some media range is application/json with a q other than 0.
fn wants_json(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if !media.eq_ignore_ascii_case("application/json") {
            return false;
        }
        !parts.any(|p| {
            p.strip_prefix("q=")
                .map(|q| q.trim_end_matches(|c| c == '0' || c == '.').is_empty())
                .unwrap_or(false)
        })
    })
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Header values are client-influenced: keep printable ASCII only.
fn printable_or(value: Option<String>, fallback: &str) -> String {
    match value {
        Some(v) if !v.is_empty() && v.bytes().all(|b| (0x20..0x7f).contains(&b)) => v,
        _ => fallback.to_string(),
    }
}

fn main() -> io::Result<()> {
    let country = env::var("HTTP_CF_IPCOUNTRY").unwrap_or_default();
    let region = printable_or(env::var("HTTP_X_EDGE_REGION").ok(), "unknown");
    let accept = env::var("HTTP_ACCEPT").unwrap_or_default();
    let fallback = env::var("GREETING_DEFAULT").ok().filter(|g| !g.is_empty());

    let (language, text) = match greeting_for(&country) {
        Some((language, text)) => (language, text.to_string()),
        None => ("en", fallback.unwrap_or_else(|| "Hello".to_string())),
    };
    let shown = if valid_country(&country) { country.as_str() } else { "unknown" };

    // Buffered whole: Rust's stdout writes at every newline, one WASI fd_write (and system
    // call) per line; the CGI answer should leave in one write (docs/abi.md).
    let mut out = io::BufWriter::new(io::stdout().lock());
    write!(out, "vary: accept, cf-ipcountry, x-edge-region\n")?;
    write!(out, "content-language: {}\nx-edge-region: {}\n", language, region)?;
    if wants_json(&accept) {
        write!(
            out,
            "content-type: application/json\n\n{{\"greeting\":{},\"language\":\"{}\",\"country\":\"{}\",\"region\":{}}}\n",
            json_string(&text),
            language,
            shown,
            json_string(&region)
        )?;
    } else {
        write!(
            out,
            "content-type: text/plain; charset=utf-8\n\n{}! Your country: {}. Served by edge region {}.\n",
            text, shown, region
        )?;
    }
    out.flush()
}
