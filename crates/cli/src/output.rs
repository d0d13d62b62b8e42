//! Printing: text tables for people, JSON for scripts, and errors with their stable codes.

use serde::Serialize;
use techpack_app::ErrorReport;

/// Prints `value` as pretty JSON.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows as an aligned text table, or `empty` when there are none (a bare header says
/// nothing to a person).
pub fn print_table(headers: &[&str], rows: &[Vec<String>], empty: &str) {
    if rows.is_empty() {
        println!("{empty}");
        return;
    }
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

/// Prints an error to stderr, as `{"error": {code, message}}` with `--json`, and returns the
/// exit status it maps to.
pub fn print_error(error: &anyhow::Error, json: bool) -> u8 {
    let report = ErrorReport::of_anyhow(error);
    if json {
        eprintln!(
            "{}",
            serde_json::json!({ "error": { "code": report.code, "message": report.message } })
        );
    } else {
        eprintln!("error: {}", report.message);
    }
    report.exit_status()
}

/// A short form of an optional value for tables.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}
