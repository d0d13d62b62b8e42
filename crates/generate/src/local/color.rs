//! Colour helpers shared by segmentation and analysis: sRGB → CIELAB, ΔE, plain colour names.

use palette::{FromColor, IntoColor, Lab, LinSrgb, Srgb};

/// A CIELAB colour (D65, f32), the space every colour decision here is made in, because
/// Euclidean distance in it is roughly perceptual (ΔE76).
pub(crate) type LabF = Lab<palette::white_point::D65, f32>;

/// sRGB 8-bit → linear light, computed once: palette's per-pixel `powf` would dominate the
/// segmentation time on a 768 px image.
fn linear_lut() -> &'static [f32; 256] {
    use std::sync::OnceLock;
    static LUT: OnceLock<[f32; 256]> = OnceLock::new();
    LUT.get_or_init(|| {
        let mut lut = [0.0f32; 256];
        for (i, v) in lut.iter_mut().enumerate() {
            let lin: LinSrgb<f32> = Srgb::new(i as u8, i as u8, i as u8).into_linear();
            *v = lin.red;
        }
        lut
    })
}

/// Converts one 8-bit sRGB pixel to CIELAB.
pub(crate) fn rgb_to_lab(rgb: [u8; 3]) -> LabF {
    let lut = linear_lut();
    let lin = LinSrgb::new(
        lut[rgb[0] as usize],
        lut[rgb[1] as usize],
        lut[rgb[2] as usize],
    );
    LabF::from_color(lin)
}

/// Converts a CIELAB colour back to 8-bit sRGB (clamped into gamut).
pub(crate) fn lab_to_rgb(lab: LabF) -> [u8; 3] {
    let lin: LinSrgb<f32> = lab.into_color();
    let srgb: Srgb<f32> = Srgb::from_linear(lin);
    let c = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    [c(srgb.red), c(srgb.green), c(srgb.blue)]
}

/// Converts a whole RGB image to CIELAB, row-major.
pub(crate) fn image_to_lab(img: &image::RgbImage) -> Vec<LabF> {
    img.pixels().map(|p| rgb_to_lab(p.0)).collect()
}

/// Squared CIE76 colour difference.
#[inline]
pub(crate) fn delta_e2(a: &LabF, b: &LabF) -> f32 {
    let dl = a.l - b.l;
    let da = a.a - b.a;
    let db = a.b - b.b;
    dl * dl + da * da + db * db
}

/// CIE76 colour difference (ΔE).
#[inline]
pub(crate) fn delta_e(a: &LabF, b: &LabF) -> f32 {
    delta_e2(a, b).sqrt()
}

/// `#rrggbb` for an 8-bit sRGB colour.
pub(crate) fn hex(rgb: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2])
}

/// A plain colour name (black, navy, red …) for a CIELAB colour.
///
/// Achromatic colours are named by lightness; chromatic ones by hue angle in LCh with
/// lightness modifiers for the names people use in product listings (navy, maroon, beige…).
pub(crate) fn plain_name(lab: LabF) -> String {
    let l = lab.l;
    let chroma = (lab.a * lab.a + lab.b * lab.b).sqrt();
    let hue = lab.b.atan2(lab.a).to_degrees().rem_euclid(360.0);
    let name = if chroma < 8.0 || (l < 18.0 && chroma < 14.0) {
        match l {
            l if l < 20.0 => "black",
            l if l < 40.0 => "charcoal",
            l if l < 70.0 => "grey",
            l if l < 90.0 => "light grey",
            _ => "white",
        }
    } else {
        // Hue bands in CIELAB hue angle (degrees), tuned on the usual garment colours.
        match hue {
            h if !(20.0..350.0).contains(&h) => {
                if l < 35.0 {
                    "maroon"
                } else if l > 75.0 && chroma < 35.0 {
                    "pink"
                } else if !(10.0..=350.0).contains(&hue) {
                    "crimson"
                } else {
                    "red"
                }
            }
            h if h < 45.0 => {
                if l < 35.0 {
                    "maroon"
                } else if l > 70.0 {
                    "pink"
                } else {
                    "red"
                }
            }
            h if h < 70.0 => {
                if l < 45.0 {
                    "brown"
                } else if l > 75.0 && chroma < 30.0 {
                    "beige"
                } else {
                    "orange"
                }
            }
            h if h < 100.0 => {
                if l < 45.0 {
                    "olive"
                } else if chroma < 25.0 {
                    "beige"
                } else {
                    "yellow"
                }
            }
            h if h < 170.0 => {
                if l < 35.0 {
                    "dark green"
                } else {
                    "green"
                }
            }
            h if h < 230.0 => "teal",
            h if h < 300.0 => {
                if l < 30.0 {
                    "navy"
                } else if l > 70.0 {
                    "light blue"
                } else {
                    "blue"
                }
            }
            h if h < 330.0 => "purple",
            _ => {
                if l > 65.0 {
                    "pink"
                } else {
                    "magenta"
                }
            }
        }
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_usual_colours() {
        let name = |rgb: [u8; 3]| plain_name(rgb_to_lab(rgb));
        assert_eq!(name([0, 0, 0]), "black");
        assert_eq!(name([255, 255, 255]), "white");
        assert_eq!(name([128, 128, 128]), "grey");
        assert_eq!(name([200, 20, 30]), "red");
        assert_eq!(name([20, 30, 80]), "navy");
        assert_eq!(name([30, 90, 200]), "blue");
        assert_eq!(name([30, 150, 60]), "green");
        assert_eq!(name([240, 200, 40]), "yellow");
    }

    #[test]
    fn lab_round_trips() {
        for rgb in [[10u8, 20, 30], [200, 100, 50], [255, 255, 255], [0, 0, 0]] {
            let back = lab_to_rgb(rgb_to_lab(rgb));
            for i in 0..3 {
                assert!(
                    (back[i] as i32 - rgb[i] as i32).abs() <= 1,
                    "{rgb:?} -> {back:?}"
                );
            }
        }
    }
}
