//! The enum-like columns. Each is stored as its snake_case name, the same string the specification's
//! TypeScript service and the database check constraints use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A string that names no variant of an enum-like column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} '{value}': expected one of {expected}")]
pub struct UnknownVariant {
    /// Which column or concept was being parsed.
    pub kind: &'static str,
    /// The value that was given.
    pub value: String,
    /// The accepted values, comma separated.
    pub expected: String,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name stored in the database and used on the command line.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant {
                        kind: $kind,
                        value: value.to_owned(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }
    };
}

// Other modules (jobs) declare their enum-like columns the same way.
pub(crate) use string_enum;

string_enum!(
    /// What a tech file holds.
    FileType, "file_type" {
        /// The analysis of one base view (front, back, side …) of a revision.
        BaseView => "base_view",
        /// A named close-up shot cropped from a base view.
        Closeup => "closeup",
        /// A technical flat sketch with callouts and measurements.
        Sketch => "sketch",
        /// A category-level file (e.g. a category template or summary).
        Category => "category",
        /// The manifest of a complete tech pack.
        CompletePack => "complete_pack",
    }
);

string_enum!(
    /// The processing state of a tech file.
    FileStatus, "status" {
        /// Generation has started and has not finished.
        Processing => "processing",
        /// The file is ready.
        Completed => "completed",
        /// Generation failed; `error_message` says why.
        Failed => "failed",
        /// Soft-deleted: kept for history, hidden from latest listings by default.
        Archived => "archived",
    }
);

string_enum!(
    /// What a collection groups.
    CollectionType, "collection_type" {
        /// A complete tech pack: base views, close-ups, sketches and the pack manifest.
        TechPackV2 => "tech_pack_v2",
        /// Base-view analyses only.
        BaseViewsSet => "base_views_set",
        /// Sketches only.
        SketchesSet => "sketches_set",
        /// Close-ups only.
        CloseupsSet => "closeups_set",
    }
);

string_enum!(
    /// The state of a collection's generation.
    CollectionStatus, "collection_status" {
        /// Created, nothing generated yet.
        Pending => "pending",
        /// Generation is running.
        InProgress => "in_progress",
        /// Every planned file was generated.
        Completed => "completed",
        /// Generation ended with some files failed.
        Partial => "partial",
        /// Generation ended with nothing usable.
        Failed => "failed",
    }
);

string_enum!(
    /// The product category, which decides the points of measure, the callout vocabulary and
    /// the close-up names.
    ///
    /// The first six are the original, broad names (stored data uses them and they keep their
    /// meaning); the finer ones after them say more about the same products, and [`Auto`]
    /// asks the provider to detect the category from the photo.
    ///
    /// [`Auto`]: ProductCategory::Auto
    ProductCategory, "category" {
        /// Garments: tops, bottoms, dresses, outerwear.
        Apparel => "apparel",
        /// Shoes and boots.
        Footwear => "footwear",
        /// Bags, totes, backpacks.
        Bags => "bags",
        /// Caps, hats, belts, small goods.
        Accessories => "accessories",
        /// Home goods: mugs, cushions, textiles.
        Home => "home",
        /// Anything else.
        Other => "other",
        /// Detect the category from the photo (a request, never the category of a result).
        Auto => "auto",
        /// Garments for the upper body worn on their own: T-shirts, polos, shirts, long
        /// sleeves, sweatshirts and pullover hoodies (apparel).
        Tops => "tops",
        /// Garments for the lower body: trousers, jeans, shorts, skirts (apparel).
        Bottoms => "bottoms",
        /// Tops that open down the whole centre front and are worn over others: jackets,
        /// coats, zip-through hoodies and fleeces (apparel).
        Outerwear => "outerwear",
        /// Caps, hats and beanies (accessories).
        Headwear => "headwear",
        /// Mugs, cups and tumblers (home).
        Drinkware => "drinkware",
        /// Bottles and flasks (home).
        Bottles => "bottles",
    }
);

impl ProductCategory {
    /// The categories a photo can be detected as: every fine category plus `bags`,
    /// `footwear` and `other` (never `auto` or a broad name that a finer one refines).
    pub const DETECTABLE: &'static [ProductCategory] = &[
        ProductCategory::Tops,
        ProductCategory::Bottoms,
        ProductCategory::Outerwear,
        ProductCategory::Headwear,
        ProductCategory::Bags,
        ProductCategory::Drinkware,
        ProductCategory::Bottles,
        ProductCategory::Footwear,
        ProductCategory::Other,
    ];

    /// Whether the category is to be detected from the photo.
    pub fn is_auto(self) -> bool {
        self == ProductCategory::Auto
    }

    /// The broad category this one belongs to: `tops`, `bottoms` and `outerwear` are
    /// `apparel`; `headwear` is `accessories`; `drinkware` and `bottles` are `home`; every
    /// other category is its own.
    pub fn broad(self) -> ProductCategory {
        match self {
            ProductCategory::Tops | ProductCategory::Bottoms | ProductCategory::Outerwear => {
                ProductCategory::Apparel
            }
            ProductCategory::Headwear => ProductCategory::Accessories,
            ProductCategory::Drinkware | ProductCategory::Bottles => ProductCategory::Home,
            other => other,
        }
    }

    /// Whether a product of category `other` is also a product of this category: a
    /// category includes itself and, for a broad one, its finer ones (`apparel` includes
    /// `tops`); `auto` includes every category.
    pub fn includes(self, other: ProductCategory) -> bool {
        self == other || self == ProductCategory::Auto || other.broad() == self
    }

    /// Whether the product is worn, so that left and right are the wearer's.
    pub fn is_worn(self) -> bool {
        matches!(
            self.broad(),
            ProductCategory::Apparel | ProductCategory::Footwear | ProductCategory::Accessories
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_variant_through_its_name() {
        for kind in FileType::ALL {
            assert_eq!(kind.as_str().parse::<FileType>().unwrap(), *kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        for kind in CollectionStatus::ALL {
            assert_eq!(kind.as_str().parse::<CollectionStatus>().unwrap(), *kind);
        }
        for kind in ProductCategory::ALL {
            assert_eq!(kind.as_str().parse::<ProductCategory>().unwrap(), *kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn the_original_category_names_keep_parsing_and_finer_ones_refine_them() {
        // Stored files carry these six names: they must keep parsing to the same variant.
        for (name, kind) in [
            ("apparel", ProductCategory::Apparel),
            ("footwear", ProductCategory::Footwear),
            ("bags", ProductCategory::Bags),
            ("accessories", ProductCategory::Accessories),
            ("home", ProductCategory::Home),
            ("other", ProductCategory::Other),
        ] {
            assert_eq!(name.parse::<ProductCategory>().unwrap(), kind);
            assert_eq!(
                serde_json::from_value::<ProductCategory>(serde_json::json!(name)).unwrap(),
                kind
            );
            assert_eq!(kind.broad(), kind);
        }
        assert_eq!(ProductCategory::Tops.broad(), ProductCategory::Apparel);
        assert!(ProductCategory::Apparel.includes(ProductCategory::Outerwear));
        assert!(!ProductCategory::Apparel.includes(ProductCategory::Drinkware));
        assert!(ProductCategory::Auto.includes(ProductCategory::Bottles));
        assert!(ProductCategory::Headwear.is_worn());
        assert!(!ProductCategory::Drinkware.is_worn());
        assert!(!ProductCategory::DETECTABLE.contains(&ProductCategory::Auto));
    }

    #[test]
    fn unknown_names_list_the_accepted_ones() {
        let error = "pdf".parse::<FileType>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown file_type 'pdf': expected one of base_view, closeup, sketch, category, complete_pack"
        );
    }
}
