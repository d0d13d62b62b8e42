//! The input rules that both backends and every entry point share. The database enforces the
//! same rules with check constraints; checking here first gives a message that names the field.

use serde_json::Value;

/// The largest `analysis_data` or `metadata` document accepted, serialized (1 MiB).
/// Larger analyses belong in a blob that the row points to.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

/// The largest free-text value accepted (prompts, error messages, descriptions): 64 KiB.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// The most rows one page of a listing returns.
pub const MAX_PAGE_SIZE: u32 = 500;

const MAX_SHORT_TEXT_CHARS: usize = 200;
const MAX_URL_CHARS: usize = 2048;
const MAX_CREDITS: i64 = 1_000_000;

/// An input that breaks a rule: names the field and the rule so the caller can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {rule}")]
pub struct ValidationError {
    /// The field that is wrong.
    pub field: &'static str,
    /// What the field must be.
    pub rule: String,
}

impl ValidationError {
    /// A rule broken by `field`.
    pub fn new(field: &'static str, rule: impl Into<String>) -> Self {
        Self {
            field,
            rule: rule.into(),
        }
    }
}

pub(crate) fn check_short_text(
    field: &'static str,
    value: Option<&str>,
) -> Result<(), ValidationError> {
    if let Some(value) = value {
        check_no_nul(field, value)?;
        if value.trim().is_empty() {
            return Err(ValidationError::new(field, "must not be empty when given"));
        }
        if value.chars().count() > MAX_SHORT_TEXT_CHARS {
            return Err(ValidationError::new(
                field,
                format!("must be at most {MAX_SHORT_TEXT_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_long_text(
    field: &'static str,
    value: Option<&str>,
) -> Result<(), ValidationError> {
    if let Some(value) = value {
        check_no_nul(field, value)?;
    }
    if let Some(value) = value
        && value.len() > MAX_TEXT_BYTES
    {
        return Err(ValidationError::new(
            field,
            format!(
                "must be at most {MAX_TEXT_BYTES} bytes (got {})",
                value.len()
            ),
        ));
    }
    Ok(())
}

pub(crate) fn check_url(field: &'static str, value: Option<&str>) -> Result<(), ValidationError> {
    if let Some(value) = value {
        check_no_nul(field, value)?;
        if value.trim().is_empty() {
            return Err(ValidationError::new(
                field,
                "must not be empty: give the blob key or URL of the file, or leave it out while the file is processing",
            ));
        }
        if value.chars().count() > MAX_URL_CHARS {
            return Err(ValidationError::new(
                field,
                format!("must be at most {MAX_URL_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_json_object(field: &'static str, value: &Value) -> Result<(), ValidationError> {
    if !value.is_object() {
        return Err(ValidationError::new(field, "must be a JSON object"));
    }
    if json_has_nul(value) {
        return Err(ValidationError::new(field, NUL_RULE));
    }
    let size = serde_json::to_vec(value)
        .map(|bytes| bytes.len())
        .unwrap_or(usize::MAX);
    if size > MAX_JSON_BYTES {
        return Err(ValidationError::new(
            field,
            format!(
                "must serialize to at most {MAX_JSON_BYTES} bytes (got {size}); store large data as a blob"
            ),
        ));
    }
    Ok(())
}

/// What a text with a NUL character is told. PostgreSQL's `text` and `jsonb` cannot hold U+0000,
/// so both backends refuse it up front rather than store on one what the other rejects.
const NUL_RULE: &str =
    "must not contain the NUL character (U+0000); remove it and send the text again";

/// Text stored in a column must not hold U+0000.
pub(crate) fn check_no_nul(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.contains('\0') {
        return Err(ValidationError::new(field, NUL_RULE));
    }
    Ok(())
}

/// Whether any string or key anywhere in a JSON document holds U+0000.
fn json_has_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(json_has_nul),
        Value::Object(map) => map
            .iter()
            .any(|(key, item)| key.contains('\0') || json_has_nul(item)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

pub(crate) fn check_credits(field: &'static str, value: i64) -> Result<(), ValidationError> {
    if !(0..=MAX_CREDITS).contains(&value) {
        return Err(ValidationError::new(
            field,
            format!("must be between 0 and {MAX_CREDITS} (got {value})"),
        ));
    }
    Ok(())
}

pub(crate) fn check_score(field: &'static str, value: Option<f64>) -> Result<(), ValidationError> {
    if let Some(value) = value
        && !(value.is_finite() && (0.0..=1.0).contains(&value))
    {
        return Err(ValidationError::new(
            field,
            format!("must be between 0 and 1 (got {value})"),
        ));
    }
    Ok(())
}

pub(crate) fn check_sha256(
    field: &'static str,
    value: Option<&str>,
) -> Result<(), ValidationError> {
    if let Some(value) = value
        && !(value.len() == 64
            && value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Err(ValidationError::new(
            field,
            "must be 64 lowercase hexadecimal digits",
        ));
    }
    Ok(())
}

pub(crate) fn check_non_negative(
    field: &'static str,
    value: Option<i64>,
) -> Result<(), ValidationError> {
    if let Some(value) = value
        && value < 0
    {
        return Err(ValidationError::new(
            field,
            format!("must not be negative (got {value})"),
        ));
    }
    Ok(())
}
