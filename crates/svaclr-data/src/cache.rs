//! The decoded-frame cache (`"cache": "memory"` in [`DataConfig`]): every frame of a video, decoded once at the
//! dataset's short side ([`VideoFrames`]) and kept in memory as RGB24 bytes, so that later samples of the video
//! choose frames instead of decoding them.
//!
//! **Same samples with and without it.** A cached video gives the bytes [`decode_frames_at`] gives for every
//! time: the store holds every frame the decoder produces from the file's start, with the times the frame rule
//! chooses by, scaled by the same converter, and [`VideoFrames::select`] applies the one frame rule
//! (`video/select.rs`). A video the store cannot hold whole (a file whose header does not read, a corrupt tail, a
//! file that is gone when its slot fills) is read as without the cache, and a cached video whose file has since
//! gone is the same "not found" error as without it: every error, and every sample that succeeds without the
//! cache, is unchanged.
//!
//! **Filling.** Each clip's slot is a `OnceLock`, filled by the first sample that needs it (a second worker asking
//! for the same video meanwhile waits for that decode); different videos fill in parallel, and a filled slot is
//! read without a lock. What a sample holds never depends on which worker filled the slot or when.
//!
//! **Budget.** Before anything is decoded, building the dataset estimates the store from each file's header
//! (frames = duration x frame rate + 1, each `width x height x 3` bytes at the short side) and refuses, with one
//! line naming the dataset and the budget, when the estimate exceeds `cache_budget_mib`: a run whose data does
//! not fit fails at start-up, not hours later by running out of memory.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::{ClipDataset, ClipItem, DataConfig};
use crate::error::DataError;
use crate::video::{DecodedFrames, VideoFrames, decode_frames_at, output_size, probe};

/// Memory the decoded-frame cache may take unless the config says otherwise ([`DataConfig::cache_budget_mib`]).
pub const DEFAULT_CACHE_BUDGET_MIB: usize = 2048;

const MIB: usize = 1 << 20;

/// Whether a dataset keeps decoded frames between samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Every sample decodes its frames from the file (one seek, a partial decode).
    #[default]
    Off,
    /// Each video is decoded whole on its first sample and its frames kept in memory.
    Memory,
}

impl CacheMode {
    /// Whether this is [`CacheMode::Off`].
    pub fn is_off(&self) -> bool {
        *self == CacheMode::Off
    }
}

/// What the cache holds (see [`ClipDataset::cache_stats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheStats {
    /// Videos whose frames are held.
    pub cached: usize,
    /// Videos read as without the cache (unreadable whole; their errors are those of a direct read).
    pub uncached: usize,
    /// Bytes of frames held.
    pub bytes: usize,
    /// The estimate the budget was checked against, in bytes.
    pub estimated_bytes: usize,
}

/// One video's slot.
#[derive(Debug)]
enum Slot {
    Frames(VideoFrames),
    /// Read as without the cache.
    Direct,
}

/// The frames of a dataset's videos, one slot per clip, each filled on first use.
#[derive(Debug)]
pub(crate) struct FrameStore {
    slots: Vec<OnceLock<Slot>>,
    bytes: AtomicUsize,
    estimated_bytes: usize,
}

impl FrameStore {
    /// An empty store for `items`, after checking the estimate of its size against `cfg.cache_budget_mib`
    /// (`dataset` names the dataset in the error). Files whose header does not read are left to the direct path.
    pub(crate) fn new(items: &[ClipItem], cfg: &DataConfig, dataset: &str) -> Result<Self, DataError> {
        let estimates: Vec<Option<usize>> = items.par_iter().map(|it| estimate_bytes(it, cfg.short_side)).collect();
        let estimated_bytes: usize = estimates.iter().flatten().sum();
        let budget = cfg.cache_budget_mib.saturating_mul(MIB);
        if estimated_bytes > budget {
            return Err(DataError::CacheBudget {
                dataset: dataset.to_string(),
                videos: items.len(),
                short_side: cfg.short_side,
                need_mib: estimated_bytes.div_ceil(MIB),
                budget_mib: cfg.cache_budget_mib,
            });
        }
        let slots = estimates
            .iter()
            .map(|e| {
                let slot = OnceLock::new();
                if e.is_none() {
                    let _ = slot.set(Slot::Direct);
                }
                slot
            })
            .collect();
        Ok(Self { slots, bytes: AtomicUsize::new(0), estimated_bytes })
    }

    /// The frames of clip `i` (decoded now if this is its first use), or `None` when it is read directly.
    fn get(&self, i: usize, item: &ClipItem, short_side: usize) -> Option<&VideoFrames> {
        let slot = self.slots.get(i)?.get_or_init(|| match VideoFrames::decode(&item.video, short_side) {
            Ok(frames) => {
                self.bytes.fetch_add(frames.bytes(), Ordering::Relaxed);
                Slot::Frames(frames)
            }
            Err(_) => Slot::Direct,
        });
        match slot {
            Slot::Frames(frames) => Some(frames),
            Slot::Direct => None,
        }
    }

    fn stats(&self) -> CacheStats {
        let (mut cached, mut uncached) = (0, 0);
        for slot in &self.slots {
            match slot.get() {
                Some(Slot::Frames(_)) => cached += 1,
                Some(Slot::Direct) => uncached += 1,
                None => {}
            }
        }
        CacheStats {
            cached,
            uncached,
            bytes: self.bytes.load(Ordering::Relaxed),
            estimated_bytes: self.estimated_bytes,
        }
    }
}

/// Bytes of every frame of `item`'s video at `short_side`, from its header: frames = duration x rate + 1
/// (`None` when the header does not read).
fn estimate_bytes(item: &ClipItem, short_side: usize) -> Option<usize> {
    let info = probe(&item.video).ok()?;
    let (w, h) = output_size(info.width, info.height, short_side);
    let frames = (info.duration * info.fps).ceil().max(0.0) as usize + 1;
    Some(frames * w as usize * h as usize * 3)
}

/// The frames of one render, in request order: chosen from the cache or decoded for it (the same bytes).
pub(crate) enum ClipFrames<'a> {
    Cached { store: &'a VideoFrames, picks: Vec<usize> },
    Decoded(DecodedFrames),
}

impl ClipFrames<'_> {
    /// `(height, width)` of every frame.
    pub(crate) fn size(&self) -> (usize, usize) {
        match self {
            ClipFrames::Cached { store, .. } => (store.height, store.width),
            ClipFrames::Decoded(d) => (d.height, d.width),
        }
    }

    /// The frames, RGB24 `[height, width, 3]` each, in request order.
    pub(crate) fn slices(&self) -> Vec<&[u8]> {
        match self {
            ClipFrames::Cached { store, picks } => picks.iter().map(|&k| store.frame(k)).collect(),
            ClipFrames::Decoded(d) => d.slices(),
        }
    }
}

impl ClipDataset {
    /// The frames of clip `i` nearest to `times`, at the config's short side: from the cache when it holds the
    /// video, else from [`decode_frames_at`]. Bytes and errors are the same either way.
    pub(crate) fn frames_at(&self, i: usize, times: &[f64]) -> Result<ClipFrames<'_>, DataError> {
        let item = self.item(i)?;
        let short_side = self.config().short_side;
        if let Some(store) = self.frame_store().and_then(|s| s.get(i, item, short_side)) {
            if !item.video.is_file() {
                return Err(DataError::Missing { path: item.video.clone() });
            }
            let picks = store.select(&item.video, times)?;
            return Ok(ClipFrames::Cached { store, picks });
        }
        Ok(ClipFrames::Decoded(decode_frames_at(&item.video, times, short_side)?))
    }

    /// What the decoded-frame cache holds (`None` when the config's `cache` is off).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.frame_store().map(FrameStore::stats)
    }
}
