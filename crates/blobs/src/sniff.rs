//! Content-type sniffing from the first bytes of an upload.
//!
//! We never trust a client's declared type: the stored type is what the bytes are. Binary
//! formats are recognised by their magic numbers (the `infer` crate); SVG and JSON have none,
//! so they are recognised from their text.

/// How many leading bytes are collected before deciding the type. Enough for every magic
/// number and for an XML prolog plus comments before `<svg`.
pub(crate) const SNIFF_LEN: usize = 8 * 1024;

/// MIME type of PNG images.
pub const PNG: &str = "image/png";
/// MIME type of JPEG images.
pub const JPEG: &str = "image/jpeg";
/// MIME type of WebP images.
pub const WEBP: &str = "image/webp";
/// MIME type of GIF images.
pub const GIF: &str = "image/gif";
/// MIME type of SVG drawings.
pub const SVG: &str = "image/svg+xml";
/// MIME type of JSON documents.
pub const JSON: &str = "application/json";
/// MIME type of PDF documents.
pub const PDF: &str = "application/pdf";

/// The MIME type the bytes look like. `head` is the start of the content; `complete` says
/// whether it is the whole content (which lets JSON be validated fully rather than as a prefix).
pub(crate) fn sniff(head: &[u8], complete: bool) -> String {
    if head.is_empty() {
        return "empty".to_owned();
    }
    // `infer` also knows some text formats (XML, HTML, scripts); an SVG is XML to it, so its
    // text verdicts only stand when the text is neither SVG nor JSON.
    let inferred = infer::get(head);
    if let Some(kind) = inferred.filter(|k| k.matcher_type() != infer::MatcherType::Text) {
        return kind.mime_type().to_owned();
    }
    let text_fallback = inferred.map_or("text/plain", |k| k.mime_type()).to_owned();
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A multi-byte character cut by the sniff window is still text.
        Err(e) if !complete && e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return "application/octet-stream".to_owned(),
    };
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if looks_like_svg(text) {
        return SVG.to_owned();
    }
    if looks_like_json(text, complete) {
        return JSON.to_owned();
    }
    text_fallback
}

fn looks_like_svg(text: &str) -> bool {
    let starts_as_xml = text.starts_with("<svg")
        || text.starts_with("<?xml")
        || text.starts_with("<!--")
        || text.starts_with("<!DOCTYPE svg");
    starts_as_xml && text.contains("<svg")
}

fn looks_like_json(text: &str, complete: bool) -> bool {
    if !(text.starts_with('{') || text.starts_with('[')) {
        return false;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    match serde::de::Deserialize::deserialize(&mut de) {
        Ok(serde::de::IgnoredAny) => de.end().is_ok(),
        // A prefix cut inside a value fails only with "unexpected end": still JSON so far.
        Err(e) => !complete && e.is_eof(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_accepted_types() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", false), PNG);
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF", false), JPEG);
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0", true), GIF);
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8 ", false), WEBP);
        assert_eq!(sniff(b"%PDF-1.7\n", false), PDF);
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"x\"></svg>", true),
            SVG
        );
        assert_eq!(sniff(b"  {\"a\": [1, 2]}", true), JSON);
        assert_eq!(sniff(b"[{\"a\": \"unfinished", false), JSON);
    }

    #[test]
    fn refuses_lookalikes() {
        assert_eq!(sniff(b"{not json", true), "text/plain");
        assert_eq!(sniff(b"[1, 2] trailing", true), "text/plain");
        assert_eq!(sniff(b"hello world", true), "text/plain");
        assert_eq!(sniff(b"<html><body>", true), "text/html");
        assert_eq!(
            sniff(b"\0\x01\x02\xff\xfe", true),
            "application/octet-stream"
        );
        assert_eq!(sniff(b"", true), "empty");
    }
}
