//! The title block: what is drawn, which view, at what scale and on what basis, by what.

use super::super::svg::{Anchor, SvgWriter, num};
use super::callouts::shorten;
use super::{INK, PAGE_WIDTH, PageTransform, SKETCH_GENERATOR, TITLE_Y0, TITLE_Y1};
use crate::Analysis;

/// The title block: what, which view, at what scale, by what.
pub(super) fn draw_title_block(w: &mut SvgWriter, analysis: &Analysis, tf: &PageTransform) {
    let (x0, x1) = (20.0, PAGE_WIDTH - 20.0);
    let (y0, y1) = (TITLE_Y0, TITLE_Y1);
    w.open_group(&format!("id=\"title-block\" fill=\"{INK}\""));
    w.rect(
        x0,
        y0,
        x1 - x0,
        y1 - y0,
        &format!("fill=\"none\" stroke=\"{INK}\" stroke-width=\"1.5\""),
    );
    // Column edges: title | category | view | scale | basis | generator.
    let cols = [x0, 400.0, 600.0, 770.0, 1020.0, 1310.0, x1];
    for x in &cols[1..cols.len() - 1] {
        w.line(
            [*x, y0],
            [*x, y1],
            &format!("stroke=\"{INK}\" stroke-width=\"1\""),
        );
    }
    let caption = |w: &mut SvgWriter, col: usize, text: &str| {
        w.text(
            [cols[col] + 14.0, y0 + 30.0],
            14.0,
            Anchor::Start,
            0.0,
            "fill=\"#666666\"",
            text,
        );
    };
    let value = |w: &mut SvgWriter, col: usize, text: &str| {
        w.text(
            [cols[col] + 14.0, y0 + 74.0],
            22.0,
            Anchor::Start,
            0.0,
            "",
            text,
        );
    };
    w.text(
        [x0 + 20.0, y0 + 58.0],
        30.0,
        Anchor::Start,
        0.0,
        "font-weight=\"bold\"",
        "TECHNICAL FLAT",
    );
    w.text(
        [x0 + 20.0, y0 + 96.0],
        16.0,
        Anchor::Start,
        0.0,
        "fill=\"#666666\"",
        &format!(
            "{} callouts · {} points of measure",
            analysis.detail_regions.len(),
            analysis.measurements.points.len()
        ),
    );
    caption(w, 1, "CATEGORY");
    value(w, 1, &analysis.category.to_string());
    caption(w, 2, "VIEW");
    value(w, 2, &shorten(&analysis.view, 14));
    caption(w, 3, "SCALE");
    let cm_per_px = analysis.measurements.scale.cm_per_px;
    let units_per_cm = if cm_per_px.is_finite() && cm_per_px > 0.0 {
        tf.scale / cm_per_px
    } else {
        0.0
    };
    if units_per_cm > 0.0 {
        // A scale bar of a round length between ~60 and ~220 page units.
        let step = [1.0, 2.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0, 200.0, 500.0]
            .into_iter()
            .find(|cm| cm * units_per_cm >= 60.0)
            .unwrap_or(500.0);
        let bar = (step * units_per_cm).min(240.0);
        let (bx, by) = (cols[3] + 14.0, y0 + 70.0);
        w.rect(bx, by, bar / 2.0, 10.0, &format!("fill=\"{INK}\""));
        w.rect(
            bx + bar / 2.0,
            by,
            bar / 2.0,
            10.0,
            &format!("fill=\"#ffffff\" stroke=\"{INK}\" stroke-width=\"1.2\""),
        );
        w.text([bx, by + 34.0], 15.0, Anchor::Start, 0.0, "", "0");
        w.text(
            [bx + bar, by + 34.0],
            15.0,
            Anchor::Middle,
            0.0,
            "",
            &format!("{} cm", num(step)),
        );
    } else {
        value(w, 3, "not to scale");
    }
    caption(w, 4, "MEASUREMENT BASIS");
    // "height=70cm (default for apparel)": the rule on the value line, its origin below.
    let basis = analysis.measurements.scale.basis.as_str();
    let (rule, origin) = match basis.split_once(" (") {
        Some((rule, rest)) => (rule, rest.trim_end_matches(')').to_owned()),
        None => (
            basis,
            serde_json::to_value(analysis.measurements.scale.source)
                .ok()
                .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
                .unwrap_or_default(),
        ),
    };
    value(w, 4, &shorten(rule, 20));
    w.text(
        [cols[4] + 14.0, y0 + 104.0],
        14.0,
        Anchor::Start,
        0.0,
        "fill=\"#666666\"",
        &shorten(&origin, 34),
    );
    caption(w, 5, "DRAWN BY");
    value(w, 5, SKETCH_GENERATOR);
    w.close_group();
}
