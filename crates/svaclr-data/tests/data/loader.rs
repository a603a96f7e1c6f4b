//! BatchLoader: deterministic in-order epochs whatever the worker count, resume, drop_last, errors.

use std::sync::Arc;

use burn::prelude::Device;
use svaclr_data::{BatchLoader, ClipDataset, DataError, HostBatch, Manifest, SpeedSet, epoch_order};

use crate::common::*;

fn loader_dataset(dir: &std::path::Path) -> Arc<ClipDataset> {
    let m = synthetic_manifest(dir, &[30; 7], &[1.5; 7], "pretrain");
    let mut cfg = readable_config(SpeedSet::Range([1.0, 3.0]));
    cfg.augment = svaclr_data::AugmentConfig::default();
    Arc::new(ClipDataset::new(&Manifest::load(&m).expect("load"), None, cfg).expect("dataset"))
}

fn collect(l: &BatchLoader, epoch: u64, start: usize) -> Vec<HostBatch> {
    l.epoch(epoch, start).map(|b| b.expect("batch")).collect()
}

#[test]
fn same_batches_in_order_for_any_worker_count() {
    let dir = tempfile::tempdir().expect("tmp");
    let ds = loader_dataset(dir.path());
    let serial = BatchLoader::new(Arc::clone(&ds), 2, 11, 0, 0);
    assert_eq!(serial.batches_per_epoch(), 3);
    let want = collect(&serial, 1, 0);
    assert_eq!(want.len(), 3);
    let order = epoch_order(11, 1, 7);
    for (k, b) in want.iter().enumerate() {
        assert_eq!(b.video_shape, [2, 3, 6, 32, 32]);
        assert_eq!(b.audio_shape, [2, 1, 16, ds.config().mel_frames()]);
        assert_eq!(b.views(), 2);
        let idx: Vec<usize> = b.specs.iter().map(|s| s.index).collect();
        assert_eq!(idx, order[2 * k..2 * k + 2].to_vec());
        assert!(b.specs.iter().all(|s| s.epoch == 1 && s.seed == 11));
    }
    for (workers, prefetch) in [(1, 1), (2, 4), (3, 1), (8, 2)] {
        let l = BatchLoader::new(Arc::clone(&ds), 2, 11, workers, prefetch);
        assert_eq!(collect(&l, 1, 0), want, "{workers} workers");
    }
    // Resume mid-epoch: exactly the tail.
    let l = BatchLoader::new(Arc::clone(&ds), 2, 11, 2, 2);
    assert_eq!(collect(&l, 1, 1), want[1..].to_vec());
    assert!(collect(&l, 1, 5).is_empty());
    // Another epoch is another order and other draws.
    assert_ne!(collect(&l, 2, 0), want);
    // Stopping early does not hang.
    let first = l.epoch(1, 0).next().expect("one").expect("ok");
    assert_eq!(first, want[0]);
    // Tensors.
    let dev = Device::flex();
    assert_eq!(first.video_tensor(1, &dev).dims(), [2, 3, 6, 32, 32]);
    assert_eq!(first.audio_tensor(0, &dev).dims(), [2, 1, 16, ds.config().mel_frames()]);
}

#[test]
fn a_bad_clip_fails_its_batch_with_its_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let ds = loader_dataset(dir.path());
    std::fs::write(dir.path().join("v3.mkv"), b"not a video").expect("corrupt");
    let l = BatchLoader::new(ds, 7, 0, 2, 2);
    let r: Vec<_> = l.epoch(0, 0).collect();
    assert_eq!(r.len(), 1);
    match &r[0] {
        Err(e @ DataError::Sample { id, .. }) => {
            assert_eq!(id, "clip3");
            assert!(e.to_string().contains("v3.mkv"), "{e}");
        }
        other => panic!("expected a sample error, got {other:?}"),
    }
}
