//! A small SVG writer for the technical sketch.
//!
//! The sketch is markup with a few element kinds, so it is written as text here rather than
//! through a DOM crate: every number goes through [`num`] (one decimal, no `-0`), so the same
//! drawing always serialises to the same bytes. It is rendered by the crate's one rasteriser,
//! [`crate::render_svg_png`].

use std::fmt::Write as _;

/// The font family the sketch asks for; the fallbacks serve viewers without DejaVu.
pub(crate) const FONT_FAMILY: &str = "DejaVu Sans, Arial, Helvetica, sans-serif";

/// Formats a coordinate or length with one decimal: fixed precision keeps output byte-stable,
/// and a tenth of a page unit is far below what a line drawing can show.
pub(crate) fn num(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let rounded = (v * 10.0).round() / 10.0;
    // `-0.0` and `0.0` must print alike, or two equal drawings could differ by a sign.
    let rounded = if rounded == 0.0 { 0.0 } else { rounded };
    if rounded.fract() == 0.0 {
        format!("{}", rounded as i64)
    } else {
        format!("{rounded:.1}")
    }
}

/// Escapes text content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// How text is anchored horizontally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// Text starts at the point.
    Start,
    /// Text is centred on the point.
    Middle,
    /// Text ends at the point.
    End,
}

impl Anchor {
    fn as_str(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// An SVG document being written.
#[derive(Debug)]
pub(crate) struct SvgWriter {
    buf: String,
}

impl SvgWriter {
    /// Starts a document with a `width × height` viewBox (one user unit = one PNG pixel).
    pub(crate) fn new(width: f64, height: f64) -> Self {
        let mut buf = String::with_capacity(64 * 1024);
        let _ = writeln!(
            buf,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"{FONT_FAMILY}\">",
            w = num(width),
            h = num(height),
        );
        Self { buf }
    }

    /// Adds an XML comment (kept short; `--` is not allowed inside comments).
    pub(crate) fn comment(&mut self, text: &str) {
        let _ = writeln!(self.buf, "<!-- {} -->", escape(text).replace("--", "- -"));
    }

    /// Opens a group with the given raw attributes (already escaped by the caller).
    pub(crate) fn open_group(&mut self, attrs: &str) {
        let _ = writeln!(self.buf, "<g {attrs}>");
    }

    /// Closes the last group.
    pub(crate) fn close_group(&mut self) {
        self.buf.push_str("</g>\n");
    }

    /// A path from path data built with [`PathData`].
    pub(crate) fn path(&mut self, d: &PathData, attrs: &str) {
        if d.is_empty() {
            return;
        }
        let _ = writeln!(self.buf, "<path d=\"{}\" {attrs}/>", d.as_str());
    }

    /// A straight line.
    pub(crate) fn line(&mut self, a: [f64; 2], b: [f64; 2], attrs: &str) {
        let _ = writeln!(
            self.buf,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" {attrs}/>",
            num(a[0]),
            num(a[1]),
            num(b[0]),
            num(b[1])
        );
    }

    /// A rectangle.
    pub(crate) fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, attrs: &str) {
        let _ = writeln!(
            self.buf,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" {attrs}/>",
            num(x),
            num(y),
            num(w),
            num(h)
        );
    }

    /// A circle.
    pub(crate) fn circle(&mut self, c: [f64; 2], r: f64, attrs: &str) {
        let _ = writeln!(
            self.buf,
            "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" {attrs}/>",
            num(c[0]),
            num(c[1]),
            num(r)
        );
    }

    /// A single line of text; `rotate` is in degrees about the anchor point.
    pub(crate) fn text(
        &mut self,
        at: [f64; 2],
        size: f64,
        anchor: Anchor,
        rotate: f64,
        attrs: &str,
        content: &str,
    ) {
        let transform = if num(rotate) == "0" {
            String::new()
        } else {
            format!(
                " transform=\"rotate({} {} {})\"",
                num(rotate),
                num(at[0]),
                num(at[1])
            )
        };
        let _ = writeln!(
            self.buf,
            "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"{}\"{transform} {attrs}>{}</text>",
            num(at[0]),
            num(at[1]),
            num(size),
            anchor.as_str(),
            escape(content)
        );
    }

    /// Closes the document and returns its text.
    pub(crate) fn finish(mut self) -> String {
        self.buf.push_str("</svg>\n");
        self.buf
    }
}

/// Path data (`d` attribute) written with fixed number formatting.
#[derive(Debug, Default, Clone)]
pub(crate) struct PathData {
    d: String,
}

impl PathData {
    /// An empty path.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, cmd: char, pts: &[[f64; 2]]) {
        if !self.d.is_empty() {
            self.d.push(' ');
        }
        self.d.push(cmd);
        for (i, p) in pts.iter().enumerate() {
            if i > 0 {
                self.d.push(' ');
            }
            let _ = write!(self.d, "{},{}", num(p[0]), num(p[1]));
        }
    }

    /// Moves to a point.
    pub(crate) fn move_to(&mut self, p: [f64; 2]) {
        self.push('M', &[p]);
    }

    /// A straight segment.
    pub(crate) fn line_to(&mut self, p: [f64; 2]) {
        self.push('L', &[p]);
    }

    /// A cubic Bézier segment.
    pub(crate) fn cubic_to(&mut self, c1: [f64; 2], c2: [f64; 2], p: [f64; 2]) {
        self.push('C', &[c1, c2, p]);
    }

    /// Closes the current subpath.
    pub(crate) fn close(&mut self) {
        self.d.push_str(" Z");
    }

    /// Whether nothing was drawn.
    pub(crate) fn is_empty(&self) -> bool {
        self.d.is_empty()
    }

    /// The `d` attribute's text.
    pub(crate) fn as_str(&self) -> &str {
        &self.d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_one_stable_decimal() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1.25), "1.3");
        assert_eq!(num(-0.04), "0");
        assert_eq!(num(-12.345), "-12.3");
        assert_eq!(num(f64::NAN), "0");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn a_written_document_parses_and_renders() {
        let mut w = SvgWriter::new(200.0, 100.0);
        let mut d = PathData::new();
        d.move_to([10.0, 10.0]);
        d.cubic_to([50.0, 0.0], [80.0, 90.0], [150.0, 50.0]);
        w.path(&d, "fill=\"none\" stroke=\"#000\"");
        w.text([100.0, 80.0], 14.0, Anchor::Middle, 0.0, "", "cuff & hem");
        let svg = w.finish();
        let out = crate::render_svg_png(&svg, &crate::RenderOptions::default()).unwrap();
        assert_eq!(out.size, [200, 100]);
        assert!(out.png.starts_with(b"\x89PNG"));
    }
}
