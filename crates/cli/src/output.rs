//! Printing: text tables for people, JSON for scripts, and errors with their stable codes.

use serde::Serialize;
use techpack_store::StoreError;

/// Prints `value` as pretty JSON.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows as an aligned text table.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!("{}", line(headers.iter().map(|h| h.to_string()).collect()));
    for row in rows {
        println!("{}", line(row.clone()));
    }
}

/// The stable code of an error, when it is one of ours.
pub fn error_code(error: &anyhow::Error) -> &'static str {
    match error.downcast_ref::<StoreError>() {
        Some(store) => store.code(),
        None => "error",
    }
}

/// Exit status: 2 for the caller's mistakes (bad input, not found, conflict), 1 otherwise.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    match error.downcast_ref::<StoreError>() {
        Some(
            StoreError::Invalid(_)
            | StoreError::NotFound { .. }
            | StoreError::Conflict(_)
            | StoreError::Forbidden(_),
        ) => 2,
        _ => 1,
    }
}

/// Prints an error to stderr, as `{"error": {code, message}}` with `--json`.
pub fn print_error(error: &anyhow::Error, json: bool) {
    let message = format!("{error:#}");
    if json {
        eprintln!(
            "{}",
            serde_json::json!({ "error": { "code": error_code(error), "message": message } })
        );
    } else {
        eprintln!("error: {message}");
    }
}

/// A short form of an optional value for tables.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}
