//! SVG → PNG: the one rasteriser of the crate, used by both providers' sketches and by
//! anything else that turns our drawings into pixels (the PDF export).
//!
//! The SVG is parsed with `usvg` (which proves it is valid) and drawn with `resvg` using
//! DejaVu Sans compiled into the binary, with every generic family mapped to it, so the same
//! drawing gives the same pixels on any machine, whatever fonts it has installed.

use std::sync::{Arc, OnceLock};

use resvg::tiny_skia;

use crate::GenerateError;

/// How to rasterise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderOptions {
    /// Output pixels per SVG user unit (1 = the document's own size; 2 for print).
    pub scale: f32,
    /// The page colour under the drawing (RGBA); `None` keeps it transparent.
    pub background: Option<[u8; 4]>,
}

impl Default for RenderOptions {
    /// At the document's size, on white.
    fn default() -> Self {
        Self {
            scale: 1.0,
            background: Some([255, 255, 255, 255]),
        }
    }
}

/// A rendered PNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPng {
    /// The PNG file's bytes.
    pub png: Vec<u8>,
    /// Its width and height in pixels.
    pub size: [u32; 2],
}

/// Why an SVG could not be rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// The text is not valid SVG.
    #[error("the SVG does not parse: {0}")]
    Parse(String),
    /// The page (times the scale) has no area or is too large to allocate.
    #[error("the SVG's page size {width}×{height} px cannot be rendered")]
    PageSize {
        /// Width asked for, in pixels.
        width: u32,
        /// Height asked for, in pixels.
        height: u32,
    },
    /// The scale is not a positive finite number.
    #[error("render scale {0} is not a positive number")]
    Scale(f32),
    /// PNG encoding failed.
    #[error("encoding the PNG failed: {0}")]
    Encode(String),
}

impl From<RenderError> for GenerateError {
    fn from(e: RenderError) -> Self {
        // Our own drawings failing to render is our fault, never the photo's.
        GenerateError::InvalidAnswer(format!("sketch rendering failed: {e}"))
    }
}

/// The font database with DejaVu Sans loaded from bytes compiled into the binary, built once:
/// loading fonts costs milliseconds and the database never changes.
fn font_database() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(dejavu::sans::regular().to_vec());
        db.load_font_data(dejavu::sans::bold().to_vec());
        // Every generic family resolves to the embedded font, so no lookup reaches the system.
        db.set_sans_serif_family("DejaVu Sans");
        db.set_serif_family("DejaVu Sans");
        db.set_monospace_family("DejaVu Sans");
        db.set_cursive_family("DejaVu Sans");
        db.set_fantasy_family("DejaVu Sans");
        Arc::new(db)
    })
    .clone()
}

/// Parses `svg` and renders it to PNG at its own size times [`RenderOptions::scale`].
pub fn render_svg_png(svg: &str, options: &RenderOptions) -> Result<RenderedPng, RenderError> {
    if !(options.scale.is_finite() && options.scale > 0.0) {
        return Err(RenderError::Scale(options.scale));
    }
    let usvg_options = usvg::Options {
        font_family: "DejaVu Sans".to_owned(),
        fontdb: font_database(),
        ..usvg::Options::default()
    };
    let tree =
        usvg::Tree::from_str(svg, &usvg_options).map_err(|e| RenderError::Parse(e.to_string()))?;
    let size = tree.size();
    let width = (size.width() * options.scale).round().max(0.0) as u32;
    let height = (size.height() * options.scale).round().max(0.0) as u32;
    let mut pixmap =
        tiny_skia::Pixmap::new(width, height).ok_or(RenderError::PageSize { width, height })?;
    if let Some([r, g, b, a]) = options.background {
        pixmap.fill(tiny_skia::Color::from_rgba8(r, g, b, a));
    }
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(options.scale, options.scale),
        &mut pixmap.as_mut(),
    );
    let png = pixmap
        .encode_png()
        .map_err(|e| RenderError::Encode(e.to_string()))?;
    Ok(RenderedPng {
        png,
        size: [width, height],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100" viewBox="0 0 200 100"><rect x="10" y="10" width="50" height="50" fill="#000"/><text x="100" y="80" font-size="14">cuff &amp; hem</text></svg>"##;

    #[test]
    fn renders_at_the_document_size_on_white() {
        let out = render_svg_png(SVG, &RenderOptions::default()).unwrap();
        assert_eq!(out.size, [200, 100]);
        let img = image::load_from_memory(&out.png).unwrap().to_rgba8();
        assert_eq!(img.get_pixel(150, 5).0, [255, 255, 255, 255]);
        assert_eq!(img.get_pixel(30, 30).0, [0, 0, 0, 255]);
    }

    #[test]
    fn scales_and_keeps_transparency_when_asked() {
        let options = RenderOptions {
            scale: 2.0,
            background: None,
        };
        let out = render_svg_png(SVG, &options).unwrap();
        assert_eq!(out.size, [400, 200]);
        let img = image::load_from_memory(&out.png).unwrap().to_rgba8();
        assert_eq!(img.get_pixel(300, 10).0[3], 0);
    }

    #[test]
    fn bad_svg_and_bad_scale_are_typed_errors() {
        assert!(matches!(
            render_svg_png("<svg", &RenderOptions::default()),
            Err(RenderError::Parse(_))
        ));
        let options = RenderOptions {
            scale: 0.0,
            ..RenderOptions::default()
        };
        assert_eq!(render_svg_png(SVG, &options), Err(RenderError::Scale(0.0)));
    }
}
