//! The enum-like columns. Each is stored as its snake_case name, the same string the seed's
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
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// The product category, which decides the points of measure and close-up names.
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
    }
);

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
