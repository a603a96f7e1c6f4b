//! The wavs `prepare` extracts: names that cannot collide, and a record of where each came from so that a rerun
//! reuses a wav only when it was made from the same video with the same settings.
//!
//! A clip `id` gets `OUT/audio/<safe>-<hash>.wav`: `<safe>` is the id with every character outside
//! `[A-Za-z0-9._-]` replaced by `_` (cut to 96 bytes), `<hash>` the first 12 hex digits of the SHA-256 of the
//! exact id. Two ids that sanitise alike (`vidéo`, `vidèo`; `my clip`, `my_clip`) or differ only in case still
//! get different names, on case-insensitive file systems too. Beside each wav, `<name>.wav.json` records the
//! id, the video (canonical path, size, modification time), the requested rate and the audio offset.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audio::{WavInfo, extract_audio_to_wav, wav_info};
use crate::error::DataError;

/// Bumped when what a wav holds changes meaning (v2: aligned to the video's first frame).
const RECORD_VERSION: u32 = 2;
/// Longest sanitised id kept in a file name, in bytes (all ASCII).
const SAFE_MAX: usize = 96;

/// The wav file name of a clip id.
pub fn wav_file_name(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .take(SAFE_MAX)
        .collect();
    let digest = Sha256::digest(id.as_bytes());
    let hash: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{safe}-{hash}.wav")
}

/// Where a wav came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WavRecord {
    version: u32,
    id: String,
    video: PathBuf,
    video_bytes: u64,
    video_modified_ns: Option<u128>,
    audio_rate: Option<u32>,
    /// Seconds by which the track started after the first video frame (applied to the wav).
    offset_seconds: f64,
}

impl WavRecord {
    fn of(id: &str, video: &Path, audio_rate: Option<u32>, offset_seconds: f64) -> Result<Self, DataError> {
        let meta = fs::metadata(video).map_err(|e| DataError::io(video, e))?;
        let modified = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos());
        Ok(Self {
            version: RECORD_VERSION,
            id: id.to_string(),
            video: fs::canonicalize(video).unwrap_or_else(|_| video.to_path_buf()),
            video_bytes: meta.len(),
            video_modified_ns: modified,
            audio_rate,
            offset_seconds,
        })
    }

    /// Same source and settings (the offset is what the record tells, not what it is compared on).
    fn same_source(&self, other: &Self) -> bool {
        Self { offset_seconds: other.offset_seconds, ..self.clone() } == *other
    }
}

fn record_path(wav: &Path) -> PathBuf {
    let mut name = wav.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// An extracted (or reused) wav.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Extracted {
    pub info: WavInfo,
    pub offset: f64,
}

/// The wav of clip `id` from `video` in `audio_dir`: reused when its record says it was made from this very video
/// (path, size, modification time) at this rate and it reads back, extracted again otherwise.
pub(crate) fn extract_or_reuse(
    id: &str,
    video: &Path,
    audio_dir: &Path,
    audio_rate: Option<u32>,
) -> Result<(PathBuf, Extracted), DataError> {
    let wav = audio_dir.join(wav_file_name(id));
    let record_file = record_path(&wav);
    let wanted = WavRecord::of(id, video, audio_rate, 0.0)?;
    let stored: Option<WavRecord> =
        fs::read_to_string(&record_file).ok().and_then(|text| serde_json::from_str(&text).ok());
    if let Some(stored) = stored.filter(|s| s.same_source(&wanted))
        && let Ok(info) = wav_info(&wav)
        && info.frames > 0
        && audio_rate.is_none_or(|r| r == info.sample_rate)
    {
        return Ok((wav, Extracted { info, offset: stored.offset_seconds }));
    }
    // Drop the record first: a run killed during extraction must not leave an old record beside a new wav.
    let _ = fs::remove_file(&record_file);
    let (info, offset) = extract_audio_to_wav(video, &wav, audio_rate)?;
    let record = WavRecord { offset_seconds: offset, ..wanted };
    let json =
        serde_json::to_string_pretty(&record).map_err(|e| DataError::io(&record_file, std::io::Error::other(e)))?;
    let tmp = record_file.with_extension("json.tmp");
    fs::write(&tmp, json).map_err(|e| DataError::io(&tmp, e))?;
    fs::rename(&tmp, &record_file).map_err(|e| DataError::io(&record_file, e))?;
    Ok((wav, Extracted { info, offset }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_ids_that_sanitise_alike_differ() {
        let names: Vec<String> =
            ["vidéo", "vidèo", "my clip", "my_clip", "Abc", "abc"].iter().map(|i| wav_file_name(i)).collect();
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a.to_lowercase(), b.to_lowercase());
            }
        }
        assert!(names[3].starts_with("my_clip-") && names[3].ends_with(".wav"), "{}", names[3]);
        assert_eq!(wav_file_name("my_clip"), names[3], "a name is a pure function of the id");
        let long = wav_file_name(&"x".repeat(1000));
        assert!(long.len() < 120, "{}", long.len());
    }
}
