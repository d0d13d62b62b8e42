//! Named points on the product, found from the silhouette's geometry, that the points of
//! measure run between: the high point of the shoulder, the underarms, the sleeve ends and
//! hem corners of a top; the waist, crotch and leg openings of bottoms; a cap's crown top and
//! brim; a bag's body corners and handle top; a mug's rim, base and handle; a bottle's neck.
//!
//! Points are found in image terms (the image's left and right) and named by the wearer's
//! side only when stored (see [`Landmarks::named`]): on a front view the wearer's left is the
//! image's right; on a back view it is the image's left.

mod bottoms;
mod goods;
mod headwear;
mod tops;

use techpack_model::ProductCategory;

use super::segment::Segmentation;
use super::shape::Shape;
use crate::Landmark;

/// Which side of the image a point is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageSide {
    /// The image's left half.
    Left,
    /// The image's right half.
    Right,
    /// On the centre line, or a single point of the product.
    Centre,
}

/// One landmark in working pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    /// Base name (`hps`, `underarm`, `hood_top` …).
    pub name: &'static str,
    /// Image side.
    pub side: ImageSide,
    /// Position in working pixels.
    pub p: [f64; 2],
    /// How sure, 0..=1.
    pub confidence: f64,
}

/// Landmarks of one photo.
#[derive(Debug, Clone, Default)]
pub(crate) struct Landmarks {
    points: Vec<Point>,
    /// Whether the wearer's left is the image's left (a back view).
    pub wearer_left_is_image_left: bool,
    /// What could not be found, in plain words (recorded as confidence reasons).
    pub missing: Vec<String>,
}

impl Landmarks {
    fn new(view: &str) -> Self {
        Self {
            points: Vec::new(),
            wearer_left_is_image_left: is_back_view(view),
            missing: Vec::new(),
        }
    }

    fn add(&mut self, name: &'static str, side: ImageSide, p: [f64; 2], confidence: f64) {
        if p[0].is_finite() && p[1].is_finite() {
            self.points.push(Point {
                name,
                side,
                p,
                confidence: confidence.clamp(0.0, 1.0),
            });
        }
    }

    /// A landmark by base name and image side.
    pub(crate) fn get(&self, name: &str, side: ImageSide) -> Option<&Point> {
        self.points
            .iter()
            .find(|p| p.name == name && p.side == side)
    }

    /// The stored name of a landmark: its base name with the wearer's side.
    pub(crate) fn full_name(&self, p: &Point) -> String {
        match self.wearer_side(p.side) {
            Some(side) => format!("{}_{side}", p.name),
            None => p.name.to_string(),
        }
    }

    /// The wearer's side (`left`/`right`) of an image side, `None` for the centre.
    pub(crate) fn wearer_side(&self, side: ImageSide) -> Option<&'static str> {
        match (side, self.wearer_left_is_image_left) {
            (ImageSide::Centre, _) => None,
            (ImageSide::Left, true) | (ImageSide::Right, false) => Some("left"),
            (ImageSide::Left, false) | (ImageSide::Right, true) => Some("right"),
        }
    }

    /// The landmarks as stored in the analysis, in input pixels.
    pub(crate) fn named(&self, scale: f64) -> Vec<Landmark> {
        self.points
            .iter()
            .map(|p| Landmark {
                name: self.full_name(p),
                point: [round2(p.p[0] * scale), round2(p.p[1] * scale)],
                confidence: round2(p.confidence),
            })
            .collect()
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Whether a view name means the product's back.
pub(crate) fn is_back_view(view: &str) -> bool {
    let v = view.to_ascii_lowercase();
    v.contains("back") || v.contains("rear")
}

/// What the landmark finders need besides the silhouette.
pub(crate) struct Context<'a> {
    /// The segmentation (working image, scale).
    pub seg: &'a Segmentation,
    /// The view name.
    pub view: &'a str,
    /// Working pixels per centimetre, from the measurement scale.
    pub px_per_cm: f64,
    /// Whether the silhouette rises into a hood (from category detection).
    pub hood: f64,
}

/// The landmarks of a product of `category`.
pub(crate) fn find(category: ProductCategory, shape: &Shape, ctx: &Context<'_>) -> Landmarks {
    let mut out = Landmarks::new(ctx.view);
    if shape.contour.len() < 8 {
        out.missing
            .push("the silhouette is too small to place landmarks on".into());
        return out;
    }
    match category {
        ProductCategory::Tops | ProductCategory::Outerwear | ProductCategory::Apparel => {
            tops::find(shape, ctx, &mut out);
        }
        ProductCategory::Bottoms => bottoms::find(shape, ctx, &mut out),
        ProductCategory::Headwear | ProductCategory::Accessories => {
            headwear::find(shape, &mut out);
        }
        ProductCategory::Bags => goods::bag(shape, &mut out),
        ProductCategory::Drinkware | ProductCategory::Home => goods::drinkware(shape, &mut out),
        ProductCategory::Bottles => goods::bottle(shape, &mut out),
        ProductCategory::Footwear => goods::footwear(shape, &mut out),
        ProductCategory::Other | ProductCategory::Auto => {}
    }
    out
}
