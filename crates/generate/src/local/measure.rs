//! Points of measure: the standard garment and product measurements, each taken between
//! landmarks (see `landmarks/`), with a stable code, a name for people and how it is
//! measured. A measurement whose landmarks were not found is left out rather than estimated.
//!
//! Every category also gets `overall_width` and `overall_height` (the product's box).
//! Garment measurements are half measures of the garment laid flat, as tech packs give them.

use techpack_model::ProductCategory;

use super::landmarks::{ImageSide, Landmarks, Point};
use super::shape::Shape;
use crate::{Measurement, MeasurementScale};

/// What a point of measure is.
struct Spec {
    name: &'static str,
    code: &'static str,
    label: &'static str,
    method: &'static str,
}

const OVERALL_WIDTH: Spec = Spec {
    name: "overall_width",
    code: "OW",
    label: "Overall width",
    method: "The product's widest extent, edge to edge, as photographed.",
};
const OVERALL_HEIGHT: Spec = Spec {
    name: "overall_height",
    code: "OH",
    label: "Overall height",
    method: "The product's tallest extent, top to bottom, as photographed.",
};

const BODY_LENGTH: Spec = Spec {
    name: "body_length",
    code: "BL",
    label: "Body length from HPS",
    method: "From the high point of the shoulder straight down, parallel to the centre front, to the bottom edge.",
};
const CHEST: Spec = Spec {
    name: "chest_width",
    code: "CH",
    label: "Chest, 2.5 cm below armhole",
    method: "Edge to edge across the body 2.5 cm (1 in) below the underarm points, laid flat (half measure).",
};
const ACROSS_SHOULDER: Spec = Spec {
    name: "across_shoulder",
    code: "AS",
    label: "Across shoulder",
    method: "From shoulder point to shoulder point, straight across.",
};
const SLEEVE_LENGTH: Spec = Spec {
    name: "sleeve_length",
    code: "SL",
    label: "Sleeve length from shoulder point",
    method: "From the shoulder point along the top (outer) edge of the sleeve to the sleeve end.",
};
const SLEEVE_OPENING: Spec = Spec {
    name: "sleeve_opening",
    code: "SO",
    label: "Sleeve opening",
    method: "Edge to edge across the end of the sleeve, laid flat (half measure).",
};
const HEM_SWEEP: Spec = Spec {
    name: "hem_width",
    code: "HS",
    label: "Hem sweep",
    method: "Edge to edge along the bottom edge of the body, laid flat (half measure).",
};
const NECK_WIDTH: Spec = Spec {
    name: "neck_width",
    code: "NW",
    label: "Neck width, HPS to HPS",
    method: "Straight across from one high point of the shoulder to the other.",
};
const ARMHOLE: Spec = Spec {
    name: "armhole_straight",
    code: "AH",
    label: "Armhole, straight",
    method: "From the shoulder point straight to the underarm point.",
};
const HOOD_HEIGHT: Spec = Spec {
    name: "hood_height",
    code: "HH",
    label: "Hood height",
    method: "From the line through both high points of the shoulder straight up to the top of the hood.",
};
const HOOD_WIDTH: Spec = Spec {
    name: "hood_width",
    code: "HW",
    label: "Hood width",
    method: "Edge to edge across the hood at its widest, laid flat.",
};

const WAIST: Spec = Spec {
    name: "waist_width",
    code: "WB",
    label: "Waistband width",
    method: "Edge to edge along the top of the waistband, laid flat (half measure).",
};
const FRONT_RISE: Spec = Spec {
    name: "front_rise",
    code: "FR",
    label: "Front rise",
    method: "From the top of the waistband at the centre straight down to the crotch point.",
};
const INSEAM: Spec = Spec {
    name: "inseam",
    code: "IN",
    label: "Inseam",
    method: "From the crotch point along the inside leg to the leg opening.",
};
const OUTSEAM: Spec = Spec {
    name: "outseam",
    code: "OS",
    label: "Outseam",
    method: "From the top of the waistband at the side along the outside leg to the leg opening.",
};
const LEG_OPENING: Spec = Spec {
    name: "leg_opening",
    code: "LO",
    label: "Leg opening",
    method: "Edge to edge across the leg's bottom edge, laid flat (half measure).",
};
const SKIRT_LENGTH: Spec = Spec {
    name: "length",
    code: "L",
    label: "Length from waist",
    method: "From the top of the waistband at the centre straight down to the hem.",
};

const CROWN_HEIGHT: Spec = Spec {
    name: "crown_height",
    code: "CRH",
    label: "Crown height",
    method: "From the top of the crown straight down to its base (the band, where the brim joins).",
};
const BRIM_LENGTH: Spec = Spec {
    name: "brim_length",
    code: "BRL",
    label: "Brim length",
    method: "From where the brim leaves the crown to the brim's tip, seen from the side.",
};
const CROWN_WIDTH: Spec = Spec {
    name: "crown_width",
    code: "CRW",
    label: "Crown width at base",
    method: "Across the crown at its base, seen from the side (front to back) or the front (side to side).",
};
const BRIM_WIDTH: Spec = Spec {
    name: "brim_width",
    code: "BRW",
    label: "Brim width",
    method: "Edge to edge across the brim at its widest, seen from the front.",
};

const BAG_WIDTH: Spec = Spec {
    name: "width",
    code: "W",
    label: "Body width",
    method: "Edge to edge across the bag's body at mid-height.",
};
const BAG_HEIGHT: Spec = Spec {
    name: "height",
    code: "H",
    label: "Body height",
    method: "From the top edge of the body (the opening) straight down to the base, at the centre.",
};
const HANDLE_DROP: Spec = Spec {
    name: "handle_drop",
    code: "HD",
    label: "Handle drop",
    method: "From the top of the handles straight down to the top edge of the body, handles held up.",
};
const BAG_BASE: Spec = Spec {
    name: "base_width",
    code: "BW",
    label: "Base width",
    method: "Edge to edge along the bottom of the body.",
};

const MUG_HEIGHT: Spec = Spec {
    name: "height",
    code: "H",
    label: "Height",
    method: "From the rim straight down to the base, standing.",
};
const RIM: Spec = Spec {
    name: "rim_diameter",
    code: "RD",
    label: "Rim diameter",
    method: "Outside edge to outside edge across the rim.",
};
const BASE: Spec = Spec {
    name: "base_diameter",
    code: "BD",
    label: "Base diameter",
    method: "Outside edge to outside edge across the base.",
};
const HANDLE_PROJECTION: Spec = Spec {
    name: "handle_projection",
    code: "HP",
    label: "Handle projection",
    method: "From the body's side to the outside of the handle, horizontally.",
};
const HANDLE_HEIGHT: Spec = Spec {
    name: "handle_height",
    code: "HG",
    label: "Handle height",
    method: "From where the handle leaves the body to where it rejoins it, vertically.",
};

const BOTTLE_HEIGHT: Spec = Spec {
    name: "height",
    code: "H",
    label: "Height",
    method: "From the top of the closure straight down to the base, standing.",
};
const BODY_DIAMETER: Spec = Spec {
    name: "body_diameter",
    code: "BDD",
    label: "Body diameter",
    method: "Edge to edge across the body at its widest.",
};
const NECK_DIAMETER: Spec = Spec {
    name: "neck_diameter",
    code: "ND",
    label: "Neck diameter",
    method: "Edge to edge across the neck at its narrowest.",
};

const SHOE_LENGTH: Spec = Spec {
    name: "length",
    code: "L",
    label: "Length",
    method: "Heel to toe along the ground line, seen from the side.",
};
const HEEL_HEIGHT: Spec = Spec {
    name: "heel_height",
    code: "HH",
    label: "Heel height",
    method: "From the ground to the underside of the heel seat at its highest lift, seen from the side.",
};

/// Turns working-pixel landmarks into measurements in input pixels and centimetres.
struct Builder<'a> {
    lm: &'a Landmarks,
    s: f64,
    cm_per_px: f64,
    out: Vec<Measurement>,
}

impl Builder<'_> {
    fn push(
        &mut self,
        spec: &Spec,
        from: [f64; 2],
        to: [f64; 2],
        from_lm: Option<&Point>,
        to_lm: Option<&Point>,
    ) {
        self.push_len(spec, from, to, None, from_lm, to_lm);
    }

    /// `length` overrides the straight distance (a sleeve measured along its edge).
    fn push_len(
        &mut self,
        spec: &Spec,
        from: [f64; 2],
        to: [f64; 2],
        length: Option<f64>,
        from_lm: Option<&Point>,
        to_lm: Option<&Point>,
    ) {
        let r2 = |v: f64| (v * 100.0).round() / 100.0;
        let from = [r2(from[0] * self.s), r2(from[1] * self.s)];
        let to = [r2(to[0] * self.s), r2(to[1] * self.s)];
        let px = length.map_or_else(
            || ((to[0] - from[0]).powi(2) + (to[1] - from[1]).powi(2)).sqrt(),
            |l| l * self.s,
        );
        if px <= 0.0 || !px.is_finite() {
            return;
        }
        self.out.push(Measurement {
            name: spec.name.into(),
            code: spec.code.into(),
            label: spec.label.into(),
            method: spec.method.into(),
            px: r2(px),
            cm: r2(px * self.cm_per_px),
            from,
            to,
            from_landmark: from_lm.map(|p| self.lm.full_name(p)),
            to_landmark: to_lm.map(|p| self.lm.full_name(p)),
        });
    }

    fn get(&self, name: &str, side: ImageSide) -> Option<&Point> {
        self.lm.get(name, side)
    }

    /// Both sides of a pair of landmarks.
    fn pair(&self, name: &str) -> Option<(&Point, &Point)> {
        Some((
            self.get(name, ImageSide::Left)?,
            self.get(name, ImageSide::Right)?,
        ))
    }
}

/// The points of measure of a product of `category`.
pub(crate) fn points_of_measure(
    category: ProductCategory,
    shape: &Shape,
    lm: &Landmarks,
    seg_scale: f64,
    scale: &MeasurementScale,
) -> Vec<Measurement> {
    let mut b = Builder {
        lm,
        s: seg_scale,
        cm_per_px: scale.cm_per_px,
        out: Vec::new(),
    };
    let bb = shape.bbox.map(f64::from);
    b.push(&OVERALL_WIDTH, [bb[0], bb[3]], [bb[2], bb[3]], None, None);
    b.push(&OVERALL_HEIGHT, [bb[2], bb[1]], [bb[2], bb[3]], None, None);
    match category {
        ProductCategory::Tops | ProductCategory::Outerwear | ProductCategory::Apparel => {
            if lm.get("crotch", ImageSide::Centre).is_some() {
                bottoms(&mut b);
            } else {
                tops(&mut b, shape);
            }
        }
        ProductCategory::Bottoms => bottoms(&mut b),
        ProductCategory::Headwear | ProductCategory::Accessories => headwear(&mut b),
        ProductCategory::Bags => bag(&mut b),
        ProductCategory::Drinkware | ProductCategory::Home => drinkware(&mut b),
        ProductCategory::Bottles => bottle(&mut b),
        ProductCategory::Footwear => footwear(&mut b),
        ProductCategory::Other | ProductCategory::Auto => {}
    }
    b.out
}

fn tops(b: &mut Builder<'_>, shape: &Shape) {
    let hps = [
        b.get("hps", ImageSide::Left).copied(),
        b.get("hps", ImageSide::Right).copied(),
    ];
    // Body length from the surer (then the higher) HPS.
    if let Some(h) = hps
        .iter()
        .flatten()
        .max_by(|p, q| {
            p.confidence
                .total_cmp(&q.confidence)
                .then(q.p[1].total_cmp(&p.p[1]))
        })
        .copied()
        && let Some(bottom) = shape.bottom(h.p[0].round() as u32)
    {
        let to = [h.p[0], f64::from(bottom) + 1.0];
        b.push(&BODY_LENGTH, h.p, to, Some(&h), None);
    }
    if let Some((l, r)) = b.pair("chest") {
        let (l, r) = (*l, *r);
        b.push(&CHEST, l.p, r.p, Some(&l), Some(&r));
    }
    if let Some((l, r)) = b.pair("shoulder") {
        let (l, r) = (*l, *r);
        b.push(&ACROSS_SHOULDER, l.p, r.p, Some(&l), Some(&r));
    }
    // One sleeve: the side whose landmarks are surest.
    let sleeve = [ImageSide::Left, ImageSide::Right]
        .into_iter()
        .filter_map(|side| {
            let sp = b.get("shoulder", side)?;
            let outer = b.get("sleeve_end_outer", side)?;
            let inner = b.get("sleeve_end_inner", side)?;
            Some((*sp, *outer, *inner, sp.confidence + outer.confidence))
        })
        .max_by(|p, q| p.3.total_cmp(&q.3));
    if let Some((sp, outer, inner, _)) = sleeve {
        let along = edge_length(shape, sp.p, outer.p);
        b.push_len(
            &SLEEVE_LENGTH,
            sp.p,
            outer.p,
            Some(along),
            Some(&sp),
            Some(&outer),
        );
        b.push(
            &SLEEVE_OPENING,
            outer.p,
            inner.p,
            Some(&outer),
            Some(&inner),
        );
    }
    if let Some((l, r)) = b.pair("hem") {
        let (l, r) = (*l, *r);
        b.push(&HEM_SWEEP, l.p, r.p, Some(&l), Some(&r));
    }
    if let (Some(l), Some(r)) = (hps[0], hps[1]) {
        b.push(&NECK_WIDTH, l.p, r.p, Some(&l), Some(&r));
    }
    let armhole = [ImageSide::Left, ImageSide::Right]
        .into_iter()
        .filter_map(|side| Some((*b.get("shoulder", side)?, *b.get("underarm", side)?)))
        .max_by(|p, q| {
            (p.0.confidence + p.1.confidence).total_cmp(&(q.0.confidence + q.1.confidence))
        });
    if let Some((sp, ua)) = armhole {
        b.push(&ARMHOLE, sp.p, ua.p, Some(&sp), Some(&ua));
    }
    if let (Some(top), Some(l), Some(r)) = (
        b.get("hood_top", ImageSide::Centre).copied(),
        hps[0],
        hps[1],
    ) {
        let base_y = (l.p[1] + r.p[1]) / 2.0;
        b.push(&HOOD_HEIGHT, [top.p[0], base_y], top.p, None, Some(&top));
    }
    if let Some((l, r)) = b.pair("hood_side") {
        let (l, r) = (*l, *r);
        b.push(&HOOD_WIDTH, l.p, r.p, Some(&l), Some(&r));
    }
}

/// Length of the outline between the contour points nearest `a` and `b` (the shorter way
/// round), simplified first so the pixel staircase does not add length; the straight distance
/// when the outline is not usable.
fn edge_length(shape: &Shape, a: [f64; 2], b: [f64; 2]) -> f64 {
    let straight = super::shape::dist(a, b);
    if shape.contour.len() < 4 {
        return straight;
    }
    let (ia, ib) = (shape.nearest_index(a), shape.nearest_index(b));
    let n = shape.contour.len();
    let forward = (ib + n - ia) % n;
    let (from, to) = if forward <= n - forward {
        (ia, ib)
    } else {
        (ib, ia)
    };
    let pts: Vec<imageproc::point::Point<f64>> = shape
        .span(from, to)
        .map(|i| {
            let p = shape.point(i);
            imageproc::point::Point::new(p[0], p[1])
        })
        .collect();
    if pts.len() < 3 {
        return straight;
    }
    let simple = imageproc::geometry::approximate_polygon_dp(&pts, 1.5, false);
    let along: f64 = simple
        .windows(2)
        .map(|w| ((w[1].x - w[0].x).powi(2) + (w[1].y - w[0].y).powi(2)).sqrt())
        .sum();
    // A path much longer than the chord went the wrong way round (or round a cuff).
    if along > straight * 1.35 {
        straight
    } else {
        along.max(straight)
    }
}

fn bottoms(b: &mut Builder<'_>) {
    if let Some((l, r)) = b.pair("waist") {
        let (l, r) = (*l, *r);
        b.push(&WAIST, l.p, r.p, Some(&l), Some(&r));
    }
    let top = b.get("waist_centre", ImageSide::Centre).copied();
    if let Some(crotch) = b.get("crotch", ImageSide::Centre).copied() {
        if let Some(t) = top {
            b.push(
                &FRONT_RISE,
                [crotch.p[0], t.p[1]],
                crotch.p,
                Some(&t),
                Some(&crotch),
            );
        }
        let leg = [ImageSide::Left, ImageSide::Right]
            .into_iter()
            .filter_map(|side| {
                Some((
                    *b.get("leg_outer", side)?,
                    *b.get("leg_inner", side)?,
                    b.get("waist", side).copied(),
                ))
            })
            .next();
        if let Some((outer, inner, waist)) = leg {
            b.push(&INSEAM, crotch.p, inner.p, Some(&crotch), Some(&inner));
            if let Some(w) = waist {
                b.push(&OUTSEAM, w.p, outer.p, Some(&w), Some(&outer));
            }
            b.push(&LEG_OPENING, outer.p, inner.p, Some(&outer), Some(&inner));
        }
    } else if let Some((l, r)) = b.pair("hem") {
        let (l, r) = (*l, *r);
        b.push(&HEM_SWEEP, l.p, r.p, Some(&l), Some(&r));
        if let Some(t) = top {
            b.push(
                &SKIRT_LENGTH,
                t.p,
                [t.p[0], l.p[1].max(r.p[1])],
                Some(&t),
                None,
            );
        }
    }
}

fn headwear(b: &mut Builder<'_>) {
    let top = b.get("crown_top", ImageSide::Centre).copied();
    let base = b.get("crown_base", ImageSide::Centre).copied();
    if let (Some(t), Some(bs)) = (top, base) {
        b.push(&CROWN_HEIGHT, t.p, [t.p[0], bs.p[1]], Some(&t), Some(&bs));
    }
    if let (Some(bb), Some(tip)) = (
        b.get("brim_base", ImageSide::Centre).copied(),
        b.get("brim_tip", ImageSide::Centre).copied(),
    ) {
        b.push(&BRIM_LENGTH, bb.p, tip.p, Some(&bb), Some(&tip));
        if let Some(back) = b.get("crown_back", ImageSide::Centre).copied() {
            b.push(
                &CROWN_WIDTH,
                back.p,
                [bb.p[0], back.p[1]],
                Some(&back),
                Some(&bb),
            );
        }
    } else {
        if let Some((l, r)) = b.pair("crown_side") {
            let (l, r) = (*l, *r);
            b.push(&CROWN_WIDTH, l.p, r.p, Some(&l), Some(&r));
        }
        if let Some((l, r)) = b.pair("brim_end") {
            let (l, r) = (*l, *r);
            b.push(&BRIM_WIDTH, l.p, r.p, Some(&l), Some(&r));
        }
    }
}

fn bag(b: &mut Builder<'_>) {
    let top = b.pair("body_top").map(|(l, r)| (*l, *r));
    let bottom = b.pair("body_bottom").map(|(l, r)| (*l, *r));
    if let (Some((tl, tr)), Some((bl, br))) = (top, bottom) {
        let y = (tl.p[1] + bl.p[1]) / 2.0;
        let xl = (tl.p[0] + bl.p[0]) / 2.0;
        let xr = (tr.p[0] + br.p[0]) / 2.0;
        b.push(&BAG_WIDTH, [xl, y], [xr, y], None, None);
        b.push(&BAG_BASE, bl.p, br.p, Some(&bl), Some(&br));
    }
    let (tc, bc) = (
        b.get("body_top_centre", ImageSide::Centre).copied(),
        b.get("base_centre", ImageSide::Centre).copied(),
    );
    if let (Some(t), Some(bs)) = (tc, bc) {
        b.push(&BAG_HEIGHT, t.p, [t.p[0], bs.p[1]], Some(&t), Some(&bs));
    }
    if let (Some(h), Some(t)) = (b.get("handle_top", ImageSide::Centre).copied(), tc) {
        b.push(&HANDLE_DROP, h.p, [h.p[0], t.p[1]], Some(&h), Some(&t));
    }
}

fn drinkware(b: &mut Builder<'_>) {
    let (rc, bc) = (
        b.get("rim_centre", ImageSide::Centre).copied(),
        b.get("base_centre", ImageSide::Centre).copied(),
    );
    if let (Some(r), Some(bs)) = (rc, bc) {
        b.push(&MUG_HEIGHT, r.p, [r.p[0], bs.p[1]], Some(&r), Some(&bs));
    }
    if let Some((l, r)) = b.pair("rim") {
        let (l, r) = (*l, *r);
        b.push(&RIM, l.p, r.p, Some(&l), Some(&r));
    }
    if let Some((l, r)) = b.pair("base") {
        let (l, r) = (*l, *r);
        b.push(&BASE, l.p, r.p, Some(&l), Some(&r));
    }
    for side in [ImageSide::Left, ImageSide::Right] {
        let (Some(outer), Some(top), Some(bottom)) = (
            b.get("handle_outer", side).copied(),
            b.get("handle_top", side).copied(),
            b.get("handle_bottom", side).copied(),
        ) else {
            continue;
        };
        // The body's edge at the handle's outermost height.
        let t = (outer.p[1] - top.p[1]) / (bottom.p[1] - top.p[1]).max(1.0);
        let edge_x = top.p[0] + (bottom.p[0] - top.p[0]) * t.clamp(0.0, 1.0);
        b.push(
            &HANDLE_PROJECTION,
            [edge_x, outer.p[1]],
            outer.p,
            None,
            Some(&outer),
        );
        b.push(
            &HANDLE_HEIGHT,
            top.p,
            [top.p[0], bottom.p[1]],
            Some(&top),
            Some(&bottom),
        );
    }
}

fn bottle(b: &mut Builder<'_>) {
    let (t, bc) = (
        b.get("top", ImageSide::Centre).copied(),
        b.get("base_centre", ImageSide::Centre).copied(),
    );
    if let (Some(t), Some(bs)) = (t, bc) {
        b.push(&BOTTLE_HEIGHT, t.p, [t.p[0], bs.p[1]], Some(&t), Some(&bs));
    }
    if let Some((l, r)) = b.pair("body") {
        let (l, r) = (*l, *r);
        b.push(&BODY_DIAMETER, l.p, r.p, Some(&l), Some(&r));
    }
    if let Some((l, r)) = b.pair("base") {
        let (l, r) = (*l, *r);
        b.push(&BASE, l.p, r.p, Some(&l), Some(&r));
    }
    if let Some((l, r)) = b.pair("neck") {
        let (l, r) = (*l, *r);
        b.push(&NECK_DIAMETER, l.p, r.p, Some(&l), Some(&r));
    }
}

fn footwear(b: &mut Builder<'_>) {
    let (h, t) = (
        b.get("heel_end", ImageSide::Centre).copied(),
        b.get("toe_end", ImageSide::Centre).copied(),
    );
    if let (Some(h), Some(t)) = (h, t) {
        b.push(&SHOE_LENGTH, h.p, t.p, Some(&h), Some(&t));
    }
    let (g, s) = (
        b.get("heel_ground", ImageSide::Centre).copied(),
        b.get("heel_seat", ImageSide::Centre).copied(),
    );
    if let (Some(g), Some(s)) = (g, s) {
        b.push(&HEEL_HEIGHT, g.p, s.p, Some(&g), Some(&s));
    }
}

/// The stable names of a category's standard points of measure (beyond the overall box),
/// as the spec sheet expects them; tests check that samples produce them.
pub(crate) fn standard_names(category: ProductCategory, hood: bool) -> Vec<&'static str> {
    match category {
        ProductCategory::Tops | ProductCategory::Outerwear => {
            let mut v = vec![
                BODY_LENGTH.name,
                CHEST.name,
                ACROSS_SHOULDER.name,
                SLEEVE_LENGTH.name,
                SLEEVE_OPENING.name,
                HEM_SWEEP.name,
                NECK_WIDTH.name,
            ];
            if hood {
                v.extend([HOOD_HEIGHT.name, HOOD_WIDTH.name]);
            }
            v
        }
        ProductCategory::Bottoms => {
            vec![WAIST.name, FRONT_RISE.name, INSEAM.name, LEG_OPENING.name]
        }
        ProductCategory::Headwear => vec![CROWN_HEIGHT.name],
        ProductCategory::Bags => vec![BAG_WIDTH.name, BAG_HEIGHT.name, HANDLE_DROP.name],
        ProductCategory::Drinkware => vec![MUG_HEIGHT.name, RIM.name, BASE.name],
        ProductCategory::Bottles => vec![BOTTLE_HEIGHT.name, BODY_DIAMETER.name, BASE.name],
        ProductCategory::Footwear => vec![SHOE_LENGTH.name, HEEL_HEIGHT.name],
        _ => Vec::new(),
    }
}
