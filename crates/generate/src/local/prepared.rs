//! The work every operation on a photo starts from — decoding, segmentation and the
//! silhouette's geometry — done once per photo and shared by the analysis, the close-ups and
//! the sketch through a small cache in the provider.
//!
//! The cache is keyed by a hash of the photo's bytes and checks the bytes themselves on a
//! hit, so a collision can never hand one photo's silhouette to another. It holds a few
//! photos (the views of a pack in flight) and forgets the least recently used. Two callers
//! asking for the same photo at once wait for one computation. Results are the same whether
//! they come from the cache or not: everything here is deterministic.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use super::category::{self, FrontLine};
use super::contrast::{self, ContrastMap};
use super::decode::{self, DecodedPhoto};
use super::segment::{self, Segmentation};
use super::shape::Shape;
use super::timing::Timer;
use crate::GenerateError;

/// A photo ready for every operation.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The decoded, oriented, scaled photo (close-ups are cut from it).
    pub photo: DecodedPhoto,
    /// The segmentation on the working copy.
    pub seg: Segmentation,
    /// The silhouette's geometry.
    pub shape: Shape,
    contrast: OnceLock<ContrastMap>,
    front_line: OnceLock<Option<FrontLine>>,
}

impl Prepared {
    /// Decodes and segments `bytes`.
    pub(crate) fn new(
        bytes: &[u8],
        max_long_side: u32,
        working_long_side: u32,
        timer: &mut Timer,
    ) -> Result<Self, GenerateError> {
        let photo = timer.time("decode", || decode::decode_photo(bytes, max_long_side))?;
        let seg = timer.time("segment", || {
            segment::segment_photo(&photo, working_long_side)
        })?;
        let shape = timer.time("shape", || Shape::new(&seg.mask));
        Ok(Self {
            photo,
            seg,
            shape,
            contrast: OnceLock::new(),
            front_line: OnceLock::new(),
        })
    }

    /// Prints, trims and fabric colours (computed on first use).
    pub(crate) fn contrast(&self) -> &ContrastMap {
        self.contrast.get_or_init(|| contrast::analyse(&self.seg))
    }

    /// A straight line down the centre front, if there is one (computed on first use).
    pub(crate) fn front_line(&self) -> Option<FrontLine> {
        *self
            .front_line
            .get_or_init(|| category::front_line(&self.shape, &self.seg, self.contrast()))
    }
}

type Slot = Arc<OnceLock<Result<Arc<Prepared>, GenerateError>>>;

struct Entry {
    hash: u64,
    bytes: Arc<[u8]>,
    slot: Slot,
}

/// The provider's cache of prepared photos.
pub(crate) struct PreparedCache {
    entries: Mutex<Vec<Entry>>,
    capacity: usize,
}

impl std::fmt::Debug for PreparedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("PreparedCache")
            .field("held", &held)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl PreparedCache {
    /// A cache of up to `capacity` photos (0 turns caching off).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
            capacity,
        }
    }

    /// Forgets every photo.
    pub(crate) fn clear(&self) {
        if let Ok(mut e) = self.entries.lock() {
            e.clear();
        }
    }

    /// The prepared photo for `bytes`, computing it with `make` unless it is held.
    pub(crate) fn get_or_prepare(
        &self,
        bytes: &Arc<[u8]>,
        make: impl FnOnce() -> Result<Prepared, GenerateError>,
    ) -> Result<Arc<Prepared>, GenerateError> {
        if self.capacity == 0 {
            return make().map(Arc::new);
        }
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        let hash = hasher.finish();
        let slot: Slot = {
            // A poisoned lock only means another thread panicked mid-update; the list itself
            // is still a valid list of entries.
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let found = entries.iter().position(|e| {
                e.hash == hash && (Arc::ptr_eq(&e.bytes, bytes) || e.bytes[..] == bytes[..])
            });
            match found {
                Some(i) => {
                    // Most recent first.
                    let entry = entries.remove(i);
                    let slot = entry.slot.clone();
                    entries.insert(0, entry);
                    slot
                }
                None => {
                    let slot: Slot = Arc::new(OnceLock::new());
                    entries.insert(
                        0,
                        Entry {
                            hash,
                            bytes: bytes.clone(),
                            slot: slot.clone(),
                        },
                    );
                    entries.truncate(self.capacity);
                    slot
                }
            }
        };
        slot.get_or_init(|| make().map(Arc::new)).clone()
    }
}
