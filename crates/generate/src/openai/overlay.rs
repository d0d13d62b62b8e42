//! The sketch document of the `openai` provider.
//!
//! An image model answers with pixels, not paths, so the SVG cannot be vector line art the way
//! the `local` provider's is. What it can be is honest vector *annotation*: numbered callouts
//! with leader lines, dimension lines with their values and a title block, all drawn as SVG
//! elements from the analysis, over the model's flat, which is embedded as a data-URL `<image>`
//! layer. The SVG's user space is the input photo's pixel grid, so callout targets and
//! measurement ends are the analysis' own coordinates.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::Analysis;

/// Long side, in pixels, of the PNG rendered from the SVG.
const RENDER_SIDE: f64 = 1600.0;

/// Radius of a callout's number circle, in drawing units (1/100 of the frame's long side).
const CALLOUT_RADIUS: f64 = 2.4;
/// Font size of callout labels and dimension values, in drawing units.
const CALLOUT_FONT: f64 = 2.6;
/// Font size of the title block's second line, in drawing units.
const DETAILS_FONT: f64 = 2.2;

/// The raster layer: the model's flat, drawn for `image_frame` (input-photo pixels: the
/// product's `frame` padded to the shape of the requested image, so it may reach outside the
/// photo) and placed exactly there.
pub(crate) struct Raster<'a> {
    pub(crate) png: &'a [u8],
    pub(crate) size: [u32; 2],
    pub(crate) frame: [u32; 4],
    pub(crate) image_frame: [f64; 4],
    pub(crate) model: &'a str,
}

/// The SVG and the callouts and measurements it draws, as data.
pub(crate) struct Overlay {
    pub(crate) svg: String,
    pub(crate) data: Value,
}

/// Draws the annotated sketch.
pub(crate) fn build(analysis: &Analysis, raster: &Raster<'_>) -> Overlay {
    let [fx0, fy0, fx1, fy1] = raster.frame.map(f64::from);
    let (fw, fh) = (fx1 - fx0, fy1 - fy0);
    // Every size is relative to the drawing, so labels read the same on any photo size.
    let u = fw.max(fh) / 100.0;
    let callouts = place_callouts(analysis, raster.frame, u);
    let scale = &analysis.measurements.scale;
    let title = format!(
        "TECHNICAL FLAT · {} · {} view",
        analysis.category.as_str().to_uppercase(),
        analysis.view
    );
    let details = format!(
        "flat: {} (raster layer) · callouts and dimensions: vector · scale {:.4} cm/px ({}: {})",
        raster.model,
        scale.cm_per_px,
        serde_json::to_value(scale.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        scale.basis,
    );
    // Each gutter is as wide as its longest callout label, so no label is cut at the edge, and
    // together they leave room for the title block's line.
    let gutter = |left: bool| {
        let longest = callouts
            .iter()
            .filter(|c| (c.anchor[0] < fx0) == left)
            .map(|c| c.label.chars().count())
            .max();
        longest.map_or(8.0 * u, |chars| {
            6.0 * u + CALLOUT_RADIUS * u + u + text_width(chars, CALLOUT_FONT * u) + 2.0 * u
        })
    };
    let (mut left, mut right) = (gutter(true), gutter(false));
    let needed = text_width(details.chars().count(), DETAILS_FONT * u) + 8.0 * u;
    let short = needed - (fw + left + right);
    if short > 0.0 {
        left += short / 2.0;
        right += short / 2.0;
    }
    let (vx, vy) = (fx0 - left, fy0 - 6.0 * u);
    let (vw, vh) = (fw + left + right, fh + 6.0 * u + 20.0 * u);
    let (out_w, out_h) = render_size(vw, vh);

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="{out_w}" height="{out_h}" viewBox="{vx:.2} {vy:.2} {vw:.2} {vh:.2}" font-family="DejaVu Sans, sans-serif">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#1f4e9c"/></marker></defs>
<rect x="{vx:.2}" y="{vy:.2}" width="{vw:.2}" height="{vh:.2}" fill="#ffffff"/>
<g id="flat"><image x="{ix:.2}" y="{iy:.2}" width="{iw:.2}" height="{ih:.2}" preserveAspectRatio="xMidYMid meet" xlink:href="data:image/png;base64,{data}"/></g>
"##,
        ix = raster.image_frame[0],
        iy = raster.image_frame[1],
        iw = raster.image_frame[2] - raster.image_frame[0],
        ih = raster.image_frame[3] - raster.image_frame[1],
        data = STANDARD.encode(raster.png),
    );

    let mut measurements = Vec::new();
    svg.push_str(r##"<g id="dimensions" stroke="#1f4e9c" fill="#1f4e9c">"##);
    svg.push('\n');
    for point in &analysis.measurements.points {
        let ([x0, y0], [x1, y1]) = (point.from, point.to);
        let (mx, my) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        // As on a drawing, the value runs along its dimension line, just above it, turned so
        // that it never reads upside down.
        let mut angle = (y1 - y0).atan2(x1 - x0).to_degrees();
        // Vertical values read bottom to top, as drafting convention has it.
        if angle >= 90.0 {
            angle -= 180.0;
        } else if angle < -90.0 {
            angle += 180.0;
        }
        let label = format!("{} {:.1} cm", point.name.replace('_', " "), point.cm);
        let _ = writeln!(
            svg,
            r##"<line x1="{x0:.2}" y1="{y0:.2}" x2="{x1:.2}" y2="{y1:.2}" stroke-width="{sw:.2}" marker-start="url(#arrow)" marker-end="url(#arrow)"/><text transform="translate({mx:.2} {my:.2}) rotate({angle:.2})" x="0" y="{ly:.2}" font-size="{fs:.2}" text-anchor="middle" stroke="#ffffff" stroke-width="{halo:.2}" paint-order="stroke">{text}</text>"##,
            ly = -1.2 * u,
            sw = 0.35 * u,
            fs = CALLOUT_FONT * u,
            halo = 0.8 * u,
            text = escape(&label),
        );
        measurements.push(json!({
            "name": point.name, "px": point.px, "cm": point.cm, "from": point.from, "to": point.to,
        }));
    }
    svg.push_str("</g>\n");

    svg.push_str(r##"<g id="callouts" stroke="#c0392b" fill="#c0392b">"##);
    svg.push('\n');
    for callout in &callouts {
        let ([tx, ty], [ax, ay]) = (callout.target, callout.anchor);
        let r = CALLOUT_RADIUS * u;
        // Labels read away from the product: leftwards in the left gutter, rightwards in the right.
        let (text_x, anchor) = if ax < tx {
            (ax - r - u, "end")
        } else {
            (ax + r + u, "start")
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{ax:.2}" y1="{ay:.2}" x2="{tx:.2}" y2="{ty:.2}" stroke-width="{sw:.2}"/><circle cx="{tx:.2}" cy="{ty:.2}" r="{dot:.2}" stroke="none"/><circle cx="{ax:.2}" cy="{ay:.2}" r="{r:.2}" fill="#ffffff" stroke-width="{sw:.2}"/><text x="{ax:.2}" y="{ay:.2}" font-size="{fs:.2}" font-weight="bold" text-anchor="middle" dominant-baseline="central" stroke="none">{number}</text><text x="{text_x:.2}" y="{ay:.2}" font-size="{fs:.2}" text-anchor="{anchor}" dominant-baseline="central" stroke="none" fill="#222222">{label}</text>"##,
            sw = 0.3 * u,
            dot = 0.7 * u,
            fs = CALLOUT_FONT * u,
            number = callout.number,
            label = escape(&callout.label),
        );
    }
    svg.push_str("</g>\n");

    let (bx, by, bw, bh) = (vx + 2.0 * u, fy1 + 6.0 * u, vw - 4.0 * u, 12.0 * u);
    let _ = write!(
        svg,
        r##"<g id="title-block"><rect x="{bx:.2}" y="{by:.2}" width="{bw:.2}" height="{bh:.2}" fill="none" stroke="#222222" stroke-width="{sw:.2}"/><text x="{tx:.2}" y="{t1:.2}" font-size="{fs1:.2}" font-weight="bold" fill="#222222">{title}</text><text x="{tx:.2}" y="{t2:.2}" font-size="{fs2:.2}" fill="#444444">{details}</text></g>
</svg>
"##,
        sw = 0.3 * u,
        tx = bx + 2.0 * u,
        t1 = by + 4.8 * u,
        t2 = by + 9.2 * u,
        fs1 = 3.2 * u,
        fs2 = DETAILS_FONT * u,
        title = escape(&title),
        details = escape(&details),
    );

    let data = json!({
        "callouts": callouts.iter().map(|c| json!({
            "number": c.number, "label": c.label, "target": c.target, "anchor": c.anchor,
        })).collect::<Vec<_>>(),
        "measurements": measurements,
        "scale": { "cm_per_px": scale.cm_per_px, "source": scale.source, "basis": scale.basis },
        "raster": { "model": raster.model, "width": raster.size[0], "height": raster.size[1], "frame": raster.frame, "image_frame": raster.image_frame },
    });
    Overlay { svg, data }
}

/// A generous estimate of a DejaVu Sans line's width: its glyphs average about 0.6 em.
fn text_width(chars: usize, font_size: f64) -> f64 {
    chars as f64 * 0.62 * font_size
}

fn render_size(vw: f64, vh: f64) -> (u32, u32) {
    let scale = RENDER_SIDE / vw.max(vh);
    (
        (vw * scale).round().max(1.0) as u32,
        (vh * scale).round().max(1.0) as u32,
    )
}

struct Callout {
    number: usize,
    label: String,
    target: [f64; 2],
    anchor: [f64; 2],
}

/// Numbers the detail regions in rank order and puts each label in the gutter on its own side,
/// spread evenly top to bottom in target order so that leader lines do not cross.
fn place_callouts(analysis: &Analysis, frame: [u32; 4], u: f64) -> Vec<Callout> {
    let [fx0, fy0, fx1, fy1] = frame.map(f64::from);
    let middle = (fx0 + fx1) / 2.0;
    let mut callouts: Vec<Callout> = analysis
        .detail_regions
        .iter()
        .enumerate()
        .map(|(i, region)| {
            let [x0, y0, x1, y1] = region.bbox.map(f64::from);
            Callout {
                number: i + 1,
                label: region.name.clone(),
                target: [(x0 + x1) / 2.0, (y0 + y1) / 2.0],
                anchor: [0.0, 0.0],
            }
        })
        .collect();
    for left in [true, false] {
        let mut side: Vec<&mut Callout> = callouts
            .iter_mut()
            .filter(|c| (c.target[0] < middle) == left)
            .collect();
        side.sort_by(|a, b| a.target[1].total_cmp(&b.target[1]));
        let count = side.len() as f64;
        let x = if left { fx0 - 6.0 * u } else { fx1 + 6.0 * u };
        for (i, callout) in side.into_iter().enumerate() {
            let y = fy0 + (fy1 - fy0) * (i as f64 + 1.0) / (count + 1.0);
            callout.anchor = [x, y];
        }
    }
    callouts
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even when escaped.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_model_text_safe_for_xml() {
        assert_eq!(
            escape("zip & <pull> \"tab\"\u{1}"),
            "zip &amp; &lt;pull&gt; &quot;tab&quot;"
        );
    }
}
