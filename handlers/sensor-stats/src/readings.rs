//! The IoT contract's batch (docs/iot.md): `[{"sensor", "value", "unit", "ts"}, ...]`.
//!
//! The answer has per sensor (in order of first appearance) `count`, `avg`, `min`, `max` and
//! `unit`, and `warnings`: the readings in degrees Celsius above the threshold. Only the first
//! `MAX_WARNINGS` are listed (`warnings_total` counts all of them), so a hot batch still fits
//! the contract's 64 KiB results payload.

use crate::json::{self, Value};

const MAX_WARNINGS: usize = 32;

struct Stats {
    name: String,
    unit: String,
    count: usize,
    sum: f64,
    min: f64,
    max: f64,
}

/// True when the document is an array whose first reading has a `"sensor"` key: the
/// contract's shape. Anything else is left to the edge app's row format and its errors.
pub fn is_contract_batch(document: &Value) -> bool {
    match document {
        Value::Array(items) => match items.first() {
            Some(Value::Object(fields)) => fields.iter().any(|(k, _)| k == "sensor"),
            _ => false,
        },
        _ => false,
    }
}

fn field<'a>(fields: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn text(fields: &[(String, Value)], key: &str, index: usize) -> Result<String, String> {
    match field(fields, key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(format!("reading {index}: \"{key}\" must be a non-empty string")),
        None => Err(format!("reading {index}: \"{key}\" is missing")),
    }
}

fn number(fields: &[(String, Value)], key: &str, index: usize) -> Result<f64, String> {
    match field(fields, key) {
        Some(Value::Number(n)) if n.is_finite() => Ok(*n),
        Some(_) => Err(format!("reading {index}: \"{key}\" must be a number")),
        None => Err(format!("reading {index}: \"{key}\" is missing")),
    }
}

/// The JSON answer for a contract batch, or what is wrong with it.
pub fn summarise(document: Value, threshold: f64) -> Result<String, String> {
    let items = match document {
        Value::Array(items) => items,
        _ => return Err("expected a JSON array of readings".to_string()),
    };
    let mut sensors: Vec<Stats> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut warnings_total = 0usize;
    for (index, item) in items.iter().enumerate() {
        let fields = match item {
            Value::Object(fields) => fields,
            _ => return Err(format!("reading {index} is not an object")),
        };
        let name = text(fields, "sensor", index)?;
        let unit = text(fields, "unit", index)?;
        let value = number(fields, "value", index)?;
        let ts = number(fields, "ts", index)?;
        if unit == "C" && value > threshold {
            warnings_total += 1;
            if warnings.len() < MAX_WARNINGS {
                warnings.push(format!(
                    "{{\"sensor\":{},\"value\":{},\"ts\":{}}}",
                    json::quote(&name),
                    json::number(value),
                    ts
                ));
            }
        }
        match sensors.iter_mut().find(|s| s.name == name) {
            Some(stats) => {
                stats.count += 1;
                stats.sum += value;
                stats.min = stats.min.min(value);
                stats.max = stats.max.max(value);
            }
            None => sensors.push(Stats { name, unit, count: 1, sum: value, min: value, max: value }),
        }
    }
    let per_sensor: Vec<String> = sensors
        .iter()
        .map(|s| {
            format!(
                "{}:{{\"count\":{},\"avg\":{},\"min\":{},\"max\":{},\"unit\":{}}}",
                json::quote(&s.name),
                s.count,
                json::number(s.sum / s.count as f64),
                json::number(s.min),
                json::number(s.max),
                json::quote(&s.unit)
            )
        })
        .collect();
    Ok(format!(
        "{{\"count\":{},\"sensors\":{{{}}},\"warnings\":[{}],\"warnings_total\":{},\"threshold_c\":{}}}",
        items.len(),
        per_sensor.join(","),
        warnings.join(","),
        warnings_total,
        json::number(threshold)
    ))
}
