//! sensor-stats over WAGI (Rust, std only).
//!
//! `POST` a JSON array of readings in one of two shapes, told apart by the first reading:
//!
//! * the edge app's rows `{"temperature": t, "humidity": h, "timestamp": ts}`; the answer is
//!   `{"count", "average_temperature", "max_temperature", "average_humidity", "status"}` with
//!   status `"warning"` when the average is above 30 °C, else `"normal"`;
//! * the IoT contract's readings `{"sensor", "value", "unit", "ts"}` (docs/iot.md, a gateway's
//!   batch); the answer is `{"count", "sensors": {name: {"count", "avg", "min", "max",
//!   "unit"}}, "warnings": [{"sensor", "value", "ts"}], "warnings_total", "threshold_c"}`
//!   (see `readings.rs`).
//!
//! Malformed input gets 400 with a message saying what is wrong and where; other methods
//! get 405. The threshold can be changed with the granted variable `WARNING_ABOVE_C`.

mod json;
mod readings;

use json::Value;
use std::env;
use std::io::{self, Read, Write};

const DEFAULT_WARNING_ABOVE_C: f64 = 30.0;

/// The threshold when `WARNING_ABOVE_C` is not granted. A build can bake in another one with
/// `SENSOR_STATS_WARNING_ABOVE_C` at compile time: handlers/build.sh makes
/// `sensor_stats_25c.wasm` that way, the stricter module the README's OTA update installs.
fn default_threshold() -> f64 {
    option_env!("SENSOR_STATS_WARNING_ABOVE_C")
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(DEFAULT_WARNING_ABOVE_C)
}
const MAX_BODY: usize = 1 << 20;

struct Reading {
    temperature: f64,
    humidity: f64,
}

fn number(fields: &[(String, Value)], key: &str, index: usize) -> Result<f64, String> {
    match fields.iter().find(|(k, _)| k == key) {
        Some((_, Value::Number(n))) if n.is_finite() => Ok(*n),
        Some(_) => Err(format!("reading {index}: \"{key}\" must be a number")),
        None => Err(format!("reading {index}: \"{key}\" is missing")),
    }
}

fn rows(document: Value) -> Result<Vec<Reading>, String> {
    let items = match document {
        Value::Array(items) => items,
        _ => return Err("expected a JSON array of readings".to_string()),
    };
    if items.is_empty() {
        return Err("no readings: the array is empty".to_string());
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(fields) => {
                let temperature = number(&fields, "temperature", index)?;
                let humidity = number(&fields, "humidity", index)?;
                match fields.iter().find(|(k, _)| k == "timestamp") {
                    Some((_, Value::Number(_))) | Some((_, Value::String(_))) => {}
                    Some(_) => return Err(format!("reading {index}: \"timestamp\" must be a number or a string")),
                    None => return Err(format!("reading {index}: \"timestamp\" is missing")),
                }
                Ok(Reading { temperature, humidity })
            }
            _ => Err(format!("reading {index} is not an object")),
        })
        .collect()
}

fn respond(out: &mut impl Write, status: &str, extra: &str, body: &str) -> io::Result<()> {
    write!(out, "status: {status}\ncontent-type: application/json\n{extra}\n{body}\n")?;
    out.flush()
}

fn error_body(message: &str) -> String {
    format!("{{\"error\":{}}}", json::quote(message))
}

fn main() -> io::Result<()> {
    // Buffered whole, so the answer leaves in one write however many lines it has.
    let mut out = io::BufWriter::new(io::stdout().lock());
    let method = env::var("REQUEST_METHOD").unwrap_or_default();
    if method != "POST" {
        return respond(&mut out, "405 Method Not Allowed", "allow: POST\n", &error_body("POST a JSON array of readings"));
    }
    let threshold = env::var("WARNING_ABOVE_C")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(default_threshold);

    let mut raw = Vec::new();
    io::stdin().take(MAX_BODY as u64 + 1).read_to_end(&mut raw)?;
    if raw.len() > MAX_BODY {
        return respond(&mut out, "413 Payload Too Large", "", &error_body("at most 1 MiB of readings"));
    }
    let text = match String::from_utf8(raw) {
        Ok(text) => text,
        Err(_) => return respond(&mut out, "400 Bad Request", "", &error_body("the body is not UTF-8")),
    };
    let document = match json::parse(&text) {
        Ok(document) => document,
        Err(message) => return respond(&mut out, "400 Bad Request", "", &error_body(&message)),
    };
    if readings::is_contract_batch(&document) {
        return match readings::summarise(document, threshold) {
            Ok(body) => respond(&mut out, "200 OK", "", &body),
            Err(message) => respond(&mut out, "400 Bad Request", "", &error_body(&message)),
        };
    }
    let parsed = rows(document);
    let readings = match parsed {
        Ok(readings) => readings,
        Err(message) => return respond(&mut out, "400 Bad Request", "", &error_body(&message)),
    };
    let count = readings.len() as f64;
    let average = readings.iter().map(|r| r.temperature).sum::<f64>() / count;
    let max = readings.iter().map(|r| r.temperature).fold(f64::NEG_INFINITY, f64::max);
    let humidity = readings.iter().map(|r| r.humidity).sum::<f64>() / count;
    let status = if average > threshold { "warning" } else { "normal" };
    let body = format!(
        "{{\"count\":{},\"average_temperature\":{},\"max_temperature\":{},\"average_humidity\":{},\"status\":\"{}\"}}",
        readings.len(),
        json::number(average),
        json::number(max),
        json::number(humidity),
        status
    );
    respond(&mut out, "200 OK", "", &body)
}
