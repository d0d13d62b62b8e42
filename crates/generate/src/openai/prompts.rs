//! The prompts. [`PROMPT_VERSION`] is part of the provider's fingerprint: change it whenever a
//! template's wording changes, so cached results made with the old wording are not reused.

use techpack_model::ProductCategory;

use crate::{Analysis, CloseupShot, ImageInfo, ViewPhoto};

/// Version of the templates below.
pub(crate) const PROMPT_VERSION: &str = "p2";

/// The system message of an analysis.
pub(crate) const ANALYSIS_SYSTEM: &str = "You are a technical designer preparing a manufacturing \
tech pack from one product photo. Answer only with the JSON document the response schema \
describes. Rules: all coordinates are integer or decimal pixels of the input image as given \
(origin top-left, x to the right, y down), boxes are [x0, y0, x1, y1] with exclusive ends and \
must lie inside the image. Look at the product only, never the background or a model wearing \
it. colors: up to 5 dominant colours of the product, lowercase #rrggbb, shares of the \
product's pixels that add up to at most 1, largest first, each with a plain name. \
measurements.points: overall_width and overall_height of the product plus the category's \
points of measure that are visible, each with its end points in pixels, px the distance \
between them and cm = px * cm_per_px. detail_regions: up to 6 distinct regions a factory would \
want a close-up of (construction, trims, closures, logos, stitching), named by their place \
(collar, cuff, hem, pocket, zip, logo, sole, toe, heel, strap, handle …), most to see first, \
score in 0..1. materials: what you can tell from the photo, may be empty. confidence: a score \
in 0..1 and plain sentences saying what limits it (busy background, occlusion, blur, unclear \
scale).";

/// Points of measure worth asking for, per category.
fn points_of_measure(category: ProductCategory) -> &'static str {
    match category {
        ProductCategory::Apparel => {
            "chest_width, body_length, hem_width, sleeve_length, shoulder_width (tops); waist_width, inseam, leg_opening (bottoms)"
        }
        ProductCategory::Tops | ProductCategory::Outerwear => {
            "chest_width, body_length, hem_width, sleeve_length, shoulder_width"
        }
        ProductCategory::Bottoms => "waist_width, inseam, leg_opening, front_rise",
        ProductCategory::Headwear => "crown_height, brim_length, width",
        ProductCategory::Drinkware | ProductCategory::Bottles => {
            "height, diameter, handle width where there is one"
        }
        ProductCategory::Auto => "those of the category you see",
        ProductCategory::Footwear => "length, heel_height, shaft_height, toe_width",
        ProductCategory::Bags => "width, height, depth (where visible), handle_drop, strap_length",
        ProductCategory::Accessories => "width, height, brim_width or strap_width where they apply",
        ProductCategory::Home => "width, height, depth where visible",
        ProductCategory::Other => "width and height of the main parts",
    }
}

/// The user text of an analysis.
pub(crate) fn analysis_user(photo: &ViewPhoto, image: ImageInfo) -> String {
    let scale = match photo
        .reference
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        Some(reference) => format!(
            "A known real size is given: \"{reference}\" (of the product's bounding box). Derive \
             cm_per_px from it, with scale.source \"reference\" and scale.basis \"{reference}\"."
        ),
        None => "No reference size is given: estimate cm_per_px from a typical product of this \
                 kind, with scale.source \"estimated\" and scale.basis naming the assumption \
                 (e.g. \"adult size M tee, body length 70 cm\")."
            .to_owned(),
    };
    format!(
        "Analyse the {view} view of this {category} product. The image is {w}x{h} pixels; use \
         exactly that pixel grid. Points of measure for {category}: {pom}. {scale}",
        view = photo.view,
        category = photo.category,
        w = image.width,
        h = image.height,
        pom = points_of_measure(photo.category),
    )
}

/// "apparel product", or just "product" when the category says nothing.
fn product(category: ProductCategory) -> String {
    match category {
        ProductCategory::Auto | ProductCategory::Other => "product".into(),
        category => format!("{category} product"),
    }
}

/// The image prompt of a close-up.
pub(crate) fn closeup(photo: &ViewPhoto, analysis: &Analysis, shot: &CloseupShot) -> String {
    let materials = if analysis.materials.is_empty() {
        String::new()
    } else {
        format!(" Materials: {}.", analysis.materials.join(", "))
    };
    // The analysis knows the category when the request left it to detection.
    let category = match photo.category {
        ProductCategory::Auto => analysis.category,
        category => category,
    };
    format!(
        "A sharp, high-resolution detail close-up of the {name} of this {product} ({view} \
         view) for a manufacturing tech pack: {description}. Keep the real materials, colours, \
         stitching and construction exactly as in the input image.{materials} Do not invent \
         features, logos or text. Even, neutral studio lighting on a plain light background, \
         the detail centred and filling the frame.",
        name = shot.name,
        product = product(category),
        view = photo.view,
        description = shot.description.trim().trim_end_matches('.'),
    )
}

/// The image prompt of a sketch. Callouts and dimensions are drawn by us as vectors on top, so
/// the model is told to leave text out: image models misspell labels and cannot number them
/// consistently with the data we record.
pub(crate) fn sketch(photo: &ViewPhoto) -> String {
    format!(
        "Redraw this {product} as a technical flat drawing for a manufacturing tech pack, \
         {view} view: black line art on a pure white background, thin uniform outlines, \
         interior seams and panel lines, topstitching as fine dashed lines, closures, pockets and \
         trims drawn as construction details. No shading, colour, texture, shadows, model, \
         mannequin, background, text, numbers or logos. Keep the product's exact position, \
         pose, proportions and framing from the input image so that the drawing lines up with it.",
        product = product(photo.category),
        view = photo.view,
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_closeup_prompt_reads_as_english() {
        let analysis: Analysis = serde_json::from_value(serde_json::json!({
            "schema_version": 2,
            "image": { "width": 10, "height": 10 },
            "view": "front",
            "category": "apparel",
            "product": { "bbox": [0, 0, 10, 10], "area_share": 1.0, "aspect_ratio": 1.0, "symmetry": 1.0 },
            "colors": [],
            "materials": ["cotton jersey"],
            "measurements": { "scale": { "cm_per_px": 1.0, "source": "estimated", "basis": "x" }, "points": [] },
            "detail_regions": [{ "name": "hem", "bbox": [0, 8, 10, 10], "score": 0.5 }],
            "confidence": { "score": 0.5, "reasons": [] }
        }))
        .unwrap();
        let shot = analysis.plan_closeups(1).remove(0);
        assert_eq!(
            shot.description,
            "close-up of the hem of the front view of an apparel product"
        );
        let photo = ViewPhoto {
            bytes: Arc::from(&b""[..]),
            view: "front".into(),
            category: ProductCategory::Auto,
            reference: None,
        };
        let prompt = closeup(&photo, &analysis, &shot);
        assert!(
            prompt.contains("of this apparel product (front view)"),
            "{prompt}"
        );
        assert!(
            prompt.contains("input image. Materials: cotton jersey. Do not invent"),
            "{prompt}"
        );
        assert!(
            !prompt.contains(". do") && !prompt.contains(" a apparel"),
            "{prompt}"
        );
    }
}
