//! `prepare` on miniature copies of each dataset layout, with broken files mixed in.

use std::fs;
use std::path::{Path, PathBuf};

use svaclr_data::prepare::{DatasetKind, PrepareOptions, prepare};
use svaclr_data::{ClipDataset, DataConfig, Manifest, SpeedSet};

use crate::common::*;

fn mkdirs(p: &Path) {
    fs::create_dir_all(p).expect("mkdir");
}

/// A 2 s clip; with a 2 s tone track when `audio`.
fn clip(dir: &Path, name: &str, audio: bool) -> PathBuf {
    mkdirs(dir);
    let t = tone(440.0, 22_050, 2.0, 0.4);
    av_file(dir, name, 50, 25.0, audio.then_some((&t[..], 22_050)))
}

fn opts(kind: DatasetKind, root: &Path, out: &Path) -> PrepareOptions {
    PrepareOptions { audio_rate: Some(16_000), progress: false, ..PrepareOptions::new(kind, root, out) }
}

fn reasons(r: &svaclr_data::prepare::PrepareReport) -> Vec<String> {
    r.unusable.iter().map(|u| format!("{} {}", u.path.display(), u.reason)).collect()
}

#[test]
fn ucf101_three_folds_video_only_and_bad_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("ucf");
    let vids = root.join("UCF-101");
    clip(&vids.join("ApplyEyeMakeup"), "v_ApplyEyeMakeup_g01_c01.avi", true);
    clip(&vids.join("ApplyEyeMakeup"), "v_ApplyEyeMakeup_g02_c01.avi", false);
    clip(&vids.join("Basketball"), "v_Basketball_g01_c01.avi", true);
    clip(&vids.join("Basketball"), "v_Basketball_g02_c01.avi", true);
    // Corrupt and too short.
    mkdirs(&vids.join("Typing"));
    fs::write(vids.join("Typing/v_Typing_g01_c01.avi"), b"garbage").expect("write");
    write_av_short(&vids.join("Typing"), "v_Typing_g02_c01.avi");
    let lists = root.join("ucfTrainTestlist");
    mkdirs(&lists);
    fs::write(lists.join("classInd.txt"), "1 ApplyEyeMakeup\n2 Basketball\n3 Typing\n").expect("w");
    fs::write(
        lists.join("trainlist01.txt"),
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\nBasketball/v_Basketball_g01_c01.avi 2\nTyping/v_Typing_g01_c01.avi 3\nTyping/v_Typing_g09_c01.avi 3\n",
    )
    .expect("w");
    fs::write(lists.join("testlist01.txt"), "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi\nBasketball/v_Basketball_g02_c01.avi\nTyping/v_Typing_g02_c01.avi\n").expect("w");
    fs::write(
        lists.join("trainlist02.txt"),
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi 1\nBasketball/v_Basketball_g02_c01.avi 2\n",
    )
    .expect("w");
    fs::write(
        lists.join("testlist02.txt"),
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nBasketball/v_Basketball_g01_c01.avi\n",
    )
    .expect("w");
    let out = tmp.path().join("out");
    let r = prepare(&opts(DatasetKind::Ucf101, &root, &out)).expect("prepare");
    assert_eq!((r.indexed, r.video_only, r.classes), (4, 1, 3), "{:?}", reasons(&r));
    let why = reasons(&r);
    assert_eq!(why.len(), 3, "{why:?}");
    assert!(why.iter().any(|w| w.contains("v_Typing_g01_c01.avi") && w.contains("cannot open video")), "{why:?}");
    assert!(why.iter().any(|w| w.contains("v_Typing_g02_c01.avi") && w.contains("too short")), "{why:?}");
    assert!(why.iter().any(|w| w.contains("v_Typing_g09_c01.avi") && w.contains("not found")), "{why:?}");
    assert_eq!(r.manifests, vec![out.join("manifest_fold1.jsonl"), out.join("manifest_fold2.jsonl")]);
    let m1 = Manifest::load(&out.join("manifest_fold1.jsonl")).expect("fold 1");
    assert_eq!((m1.split("train").len(), m1.split("test").len()), (2, 2));
    let m2 = Manifest::load(&out.join("manifest_fold2.jsonl")).expect("fold 2");
    let e = m2.entries.iter().find(|e| e.id == "v_ApplyEyeMakeup_g01_c01").expect("entry");
    assert_eq!((e.split.as_str(), e.label, e.label_name.as_deref()), ("test", Some(0), Some("ApplyEyeMakeup")));
    assert!((e.duration - 2.0).abs() < 0.1 && (e.fps - 25.0).abs() < 1e-6, "{e:?}");
    let wav = m2.audio_path(e).expect("wav");
    let info = svaclr_data::audio::wav_info(&wav).expect("wav info");
    assert_eq!((info.sample_rate, info.channels), (16_000, 1));
    let silent = m1.entries.iter().find(|e| e.id == "v_ApplyEyeMakeup_g02_c01").expect("entry");
    assert_eq!(silent.audio, None);
    assert_eq!(fs::read_to_string(out.join("classes.txt")).expect("classes"), "ApplyEyeMakeup\nBasketball\nTyping\n");
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("prepare_report.json")).expect("report")).expect("json");
    assert_eq!(json["indexed"], 4);
    assert!(r.summary().contains("4 indexed") && !r.summary().contains('\n'));
    // The manifest feeds a dataset (video-only entries need allow_missing_audio).
    let cfg = DataConfig {
        allow_missing_audio: true,
        speeds: SpeedSet::Range([1.0, 1.0]),
        ..readable_config(SpeedSet::Range([1.0, 1.0]))
    };
    let ds = ClipDataset::new(&m1, Some("test"), cfg).expect("dataset");
    for i in 0..ds.len() {
        ds.eval_samples(i, 2, 1).expect("eval sample");
    }
    // A second run reuses the wavs and gives the same manifests.
    let again = prepare(&opts(DatasetKind::Ucf101, &root, &out)).expect("again");
    assert_eq!(again.indexed, 4);
    assert_eq!(Manifest::load(&out.join("manifest_fold1.jsonl")).expect("reload").entries, m1.entries);
}

fn write_av_short(dir: &Path, name: &str) {
    mkdirs(dir);
    let t = tone(440.0, 22_050, 0.4, 0.4);
    av_file(dir, name, 10, 25.0, Some((&t, 22_050)));
}

#[test]
fn hmdb51_split_markers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("hmdb");
    for (class, n) in [("brush_hair", 2), ("clap", 2)] {
        for k in 0..n {
            clip(&root.join("hmdb51_org").join(class), &format!("{class}_video_{k}.avi"), k == 0);
        }
    }
    let splits = root.join("testTrainMulti_7030_splits");
    mkdirs(&splits);
    for fold in 1..=3 {
        fs::write(
            splits.join(format!("brush_hair_test_split{fold}.txt")),
            "brush_hair_video_0.avi 1\nbrush_hair_video_1.avi 2\n",
        )
        .expect("w");
        fs::write(splits.join(format!("clap_test_split{fold}.txt")), "clap_video_0.avi 2\nclap_video_1.avi 0\n")
            .expect("w");
    }
    let out = tmp.path().join("out");
    let r = prepare(&opts(DatasetKind::Hmdb51, &root, &out)).expect("prepare");
    assert_eq!((r.indexed, r.classes, r.manifests.len()), (3, 2, 3), "{:?}", reasons(&r));
    let m = Manifest::load(&out.join("manifest_fold3.jsonl")).expect("fold 3");
    assert_eq!((m.split("train").len(), m.split("test").len()), (1, 2));
    let clap = m.entries.iter().find(|e| e.id == "clap_video_0").expect("clap");
    assert_eq!((clap.label, clap.split.as_str()), (Some(1), "test"));
}

fn kinetics_root(tmp: &Path) -> PathBuf {
    let root = tmp.join("k400");
    for (split, class, id, audio) in [
        ("train", "playing drums", "aaaaaaaaaaa", true),
        ("train", "bowling", "bbbbbbbbbbb", true),
        ("train", "reading book", "ccccccccccc", true),
        ("val", "bowling", "ddddddddddd", true),
        ("val", "playing drums", "eeeeeeeeeee", false),
    ] {
        clip(&root.join(split).join(class), &format!("{id}_000010_000020.mp4"), audio);
    }
    root
}

#[test]
fn kinetics_folders_and_kinetics_sounds_subset() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = kinetics_root(tmp.path());
    let out = tmp.path().join("out_k400");
    let r = prepare(&opts(DatasetKind::K400, &root, &out)).expect("k400");
    assert_eq!((r.indexed, r.classes), (4, 3), "{:?}", reasons(&r));
    assert!(reasons(&r)[0].contains("eeeeeeeeeee") && reasons(&r)[0].contains("no audio track"));
    let m = Manifest::load(&out.join("manifest.jsonl")).expect("manifest");
    assert_eq!((m.split("train").len(), m.split("val").len()), (3, 1));
    let out_ks = tmp.path().join("out_ks");
    let r = prepare(&opts(DatasetKind::KineticsSounds, &root, &out_ks)).expect("ks");
    assert_eq!((r.indexed, r.classes), (3, 32), "{:?}", reasons(&r));
    let m = Manifest::load(&out_ks.join("manifest.jsonl")).expect("manifest");
    let drums = m.entries.iter().find(|e| e.id.starts_with("aaaaaaaaaaa")).expect("drums");
    assert_eq!((drums.label, drums.label_name.as_deref()), (Some(11), Some("playing drums")));
    assert!(m.entries.iter().all(|e| e.label_name.as_deref() != Some("reading book")));
}

#[test]
fn kinetics_csv_and_vggsound_csv() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("kcsv");
    clip(&root.join("videos"), "fffffffffff_000003_000013.mp4", true);
    clip(&root.join("videos"), "ggggggggggg_000000_000010.mp4", true);
    mkdirs(&root.join("annotations"));
    fs::write(
        root.join("annotations/train.csv"),
        "label,youtube_id,time_start,time_end,split\n\"tapping pen\",fffffffffff,3,13,train\nsinging,ggggggggggg,0,10,train\nsinging,hhhhhhhhhhh,5,15,train\n",
    )
    .expect("w");
    let out = tmp.path().join("out");
    let r = prepare(&opts(DatasetKind::K400, &root, &out)).expect("csv");
    assert_eq!((r.indexed, r.classes, r.listed), (2, 2, 3), "{:?}", reasons(&r));
    assert!(reasons(&r)[0].contains("hhhhhhhhhhh") && reasons(&r)[0].contains("not found"));

    let vroot = tmp.path().join("vgg");
    clip(&vroot.join("video"), "iiiiiiiiiii_000030.mp4", true);
    clip(&vroot.join("video"), "jjjjjjjjjjj_000000.mp4", true);
    fs::write(
        vroot.join("vggsound.csv"),
        "iiiiiiiiiii,30,\"playing steel guitar, slide guitar\",test\njjjjjjjjjjj,0,dog barking,train\n",
    )
    .expect("w");
    let vout = tmp.path().join("vout");
    let r = prepare(&opts(DatasetKind::Vggsound, &vroot, &vout)).expect("vgg");
    assert_eq!((r.indexed, r.classes), (2, 2), "{:?}", reasons(&r));
    let m = Manifest::load(&vout.join("manifest.jsonl")).expect("manifest");
    let steel = m.split("test");
    assert_eq!(steel.len(), 1);
    assert_eq!((steel[0].label, steel[0].label_name.as_deref()), (Some(1), Some("playing steel guitar, slide guitar")));
}

#[test]
fn bad_roots_fail_with_a_cause() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let e = prepare(&opts(DatasetKind::Ucf101, &tmp.path().join("nowhere"), &out)).expect_err("missing root");
    assert!(e.to_string().contains("nowhere"), "{e}");
    let empty = tmp.path().join("empty");
    mkdirs(&empty);
    let e = prepare(&opts(DatasetKind::Ucf101, &empty, &out)).expect_err("no layout");
    assert!(e.to_string().contains("classInd.txt"), "{e}");
    let e = prepare(&opts(DatasetKind::Vggsound, &empty, &out)).expect_err("no csv");
    assert!(e.to_string().contains("vggsound.csv"), "{e}");
}

/// A 2 s clip with a tone of `hz` (22.05 kHz track).
fn tone_clip(dir: &Path, name: &str, hz: f64) -> PathBuf {
    mkdirs(dir);
    let t = tone(hz, 22_050, 2.0, 0.4);
    av_file(dir, name, 50, 25.0, Some((&t, 22_050)))
}

fn entry_tone(m: &Manifest, id: &str) -> f64 {
    let e = m.entries.iter().find(|e| e.id == id).unwrap_or_else(|| panic!("no entry {id}"));
    let wav = svaclr_data::audio::read_wav_mono(&m.audio_path(e).expect("wav")).expect("read");
    peak_hz(&wav.samples, wav.sample_rate)
}

#[test]
fn ids_that_sanitise_alike_keep_their_own_sound_and_reruns_extract_again_when_the_video_changed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("k");
    let dir = root.join("train").join("bowling");
    let clips = [("vidéo", 440.0), ("vidèo", 880.0), ("my clip", 660.0), ("my_clip", 1320.0)];
    for (id, hz) in clips {
        tone_clip(&dir, &format!("{id}.mkv"), hz);
    }
    let out = tmp.path().join("out");
    let r = prepare(&opts(DatasetKind::K400, &root, &out)).expect("prepare");
    assert_eq!(r.indexed, 4, "{:?}", reasons(&r));
    let m = Manifest::load(&out.join("manifest.jsonl")).expect("manifest");
    let wavs: std::collections::BTreeSet<_> = m.entries.iter().map(|e| e.audio.clone()).collect();
    assert_eq!(wavs.len(), 4, "one wav per id: {wavs:?}");
    for (id, hz) in clips {
        let got = entry_tone(&m, id);
        assert!((got - hz).abs() < 5.0, "{id}: its wav holds {got} Hz, its video {hz} Hz");
    }
    // Replace one video by another recording: the rerun must not reuse the old wav.
    std::thread::sleep(std::time::Duration::from_millis(20));
    tone_clip(&dir, "my clip.mkv", 2000.0);
    prepare(&opts(DatasetKind::K400, &root, &out)).expect("rerun");
    let m = Manifest::load(&out.join("manifest.jsonl")).expect("manifest");
    let got = entry_tone(&m, "my clip");
    assert!((got - 2000.0).abs() < 5.0, "rerun kept a stale wav: {got} Hz");
    assert!((entry_tone(&m, "my_clip") - 1320.0).abs() < 5.0);
}

#[test]
fn a_listed_clip_without_its_own_file_is_reported_not_given_another_clips_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("ks");
    let v = root.join("videos");
    // Video A: two clips listed (train and val), only the first downloaded.
    tone_clip(&v, "aaaaaaaaaaa_000010_000020.mp4", 440.0);
    // Video B: two clips listed, one file named after the video alone: which clip it is cannot be told.
    tone_clip(&v, "bbbbbbbbbbb.mp4", 550.0);
    // Video C: one clip listed, file named after the video: it is that clip.
    tone_clip(&v, "ccccccccccc.mp4", 660.0);
    mkdirs(&root.join("annotations"));
    fs::write(root.join("annotations/train.csv"), "label,youtube_id,time_start,time_end,split\nbowling,aaaaaaaaaaa,10,20,train\nbowling,bbbbbbbbbbb,0,10,train\nsinging,ccccccccccc,5,15,train\n").expect("w");
    fs::write(
        root.join("annotations/validate.csv"),
        "label,youtube_id,time_start,time_end,split\nbowling,aaaaaaaaaaa,30,40,val\nbowling,bbbbbbbbbbb,20,30,val\n",
    )
    .expect("w");
    let out = tmp.path().join("out");
    let r = prepare(&opts(DatasetKind::KineticsSounds, &root, &out)).expect("prepare");
    let why = reasons(&r);
    assert_eq!((r.listed, r.indexed, why.len()), (5, 2, 3), "{why:?}");
    assert!(why.iter().any(|w| w.contains("aaaaaaaaaaa_000030_000040") && w.contains("not found")), "{why:?}");
    assert_eq!(why.iter().filter(|w| w.contains("bbbbbbbbbbb_0000") && w.contains("2 clips")).count(), 2, "{why:?}");
    let m = Manifest::load(&out.join("manifest.jsonl")).expect("manifest");
    let ids: Vec<&str> = m.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, vec!["aaaaaaaaaaa_000010_000020", "ccccccccccc_000005_000015"]);
    assert_eq!(m.split("val").len(), 0, "no val clip may reuse the train clip's file");

    // VGGSound: the same rule.
    let vroot = tmp.path().join("vgg");
    tone_clip(&vroot, "ddddddddddd_000000.mp4", 440.0);
    tone_clip(&vroot, "eeeeeeeeeee.mp4", 440.0);
    fs::write(
        vroot.join("vggsound.csv"),
        "ddddddddddd,0,dog,train\nddddddddddd,30,dog,test\neeeeeeeeeee,0,cat,train\neeeeeeeeeee,10,cat,test\n",
    )
    .expect("w");
    let vout = tmp.path().join("vout");
    let r = prepare(&opts(DatasetKind::Vggsound, &vroot, &vout)).expect("vgg");
    let why = reasons(&r);
    assert_eq!((r.listed, r.indexed, why.len()), (4, 1, 3), "{why:?}");
    let m = Manifest::load(&vout.join("manifest.jsonl")).expect("manifest");
    assert_eq!(m.entries.len(), 1);
    assert_eq!((m.entries[0].id.as_str(), m.entries[0].split.as_str()), ("ddddddddddd_000000", "train"));
}

#[cfg(unix)]
#[test]
fn a_broken_link_is_listed_once_and_named_as_such() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("ucf");
    let vids = root.join("UCF-101/Basketball");
    clip(&vids, "v_Basketball_g01_c01.avi", true);
    std::os::unix::fs::symlink(tmp.path().join("gone.avi"), vids.join("v_Basketball_g02_c01.avi")).expect("link");
    let lists = root.join("ucfTrainTestlist");
    mkdirs(&lists);
    fs::write(lists.join("classInd.txt"), "1 Basketball\n").expect("w");
    fs::write(lists.join("trainlist01.txt"), "Basketball/v_Basketball_g01_c01.avi 1\n").expect("w");
    fs::write(
        lists.join("testlist01.txt"),
        "Basketball/v_Basketball_g02_c01.avi\nBasketball/v_Basketball_g03_c01.avi\n",
    )
    .expect("w");
    let r = prepare(&opts(DatasetKind::Ucf101, &root, &tmp.path().join("out"))).expect("prepare");
    let why = reasons(&r);
    assert_eq!((r.listed, r.indexed, why.len()), (3, 1, 2), "{why:?}");
    assert_eq!(r.listed, r.indexed + r.unusable.len());
    assert!(
        why.iter().any(|w| w.contains("g02") && w.contains("broken symbolic link") && w.contains("gone.avi")),
        "{why:?}"
    );
    assert!(why.iter().any(|w| w.contains("g03") && w.contains("not found")), "{why:?}");
}

#[test]
fn options_are_checked_before_any_work() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let root = kinetics_root(tmp.path());
    for rate in [1, 7_999, 192_001] {
        let o = PrepareOptions { audio_rate: Some(rate), ..opts(DatasetKind::K400, &root, &out) };
        let e = prepare(&o).expect_err("bad rate");
        assert!(
            e.to_string().contains(&format!("audio rate {rate} Hz")) && e.to_string().contains("8000..=192000"),
            "{e}"
        );
    }
    assert!(!out.exists(), "a rejected run writes nothing");
    let file = tmp.path().join("a_file.txt");
    fs::write(&file, "x").expect("w");
    let e = prepare(&opts(DatasetKind::K400, &file, &out)).expect_err("file root");
    assert!(e.to_string().contains("a_file.txt") && e.to_string().contains("is a file, not a folder"), "{e}");
    let o = PrepareOptions { min_duration: f64::NAN, ..opts(DatasetKind::K400, &root, &out) };
    assert!(prepare(&o).is_err());
    for rate in [8_000, 192_000] {
        let o = PrepareOptions { audio_rate: Some(rate), ..opts(DatasetKind::K400, &root, &out) };
        o.validate().expect("edge rates are fine");
    }
}

#[test]
fn fold_lists_name_class_folders_and_may_hold_spaces() {
    let tmp = tempfile::tempdir().expect("tmp");
    // UCF101: the listed Drumming clip is missing, but a file of the same name sits in Bowling/ (another clip); a
    // listed name holds a space.
    let root = tmp.path().join("ucf");
    let vids = root.join("UCF-101");
    clip(&vids.join("Bowling"), "v_Drumming_g01_c02.avi", true);
    clip(&vids.join("Bowling"), "v_Bowling_g01_c01 copy.avi", true);
    // UCF101's own quirk: the list says HandstandPushups/, the folder is HandStandPushups/.
    clip(&vids.join("HandStandPushups"), "v_HandStandPushups_g01_c01.avi", true);
    let lists = root.join("ucfTrainTestlist");
    mkdirs(&lists);
    fs::write(lists.join("classInd.txt"), "1 Bowling\n2 Drumming\n3 HandstandPushups\n").expect("w");
    fs::write(
        lists.join("trainlist01.txt"),
        "Drumming/v_Drumming_g01_c02.avi 2\nBowling/v_Bowling_g01_c01 copy.avi 1\n\
         HandstandPushups/v_HandStandPushups_g01_c01.avi 3\n",
    )
    .expect("w");
    fs::write(lists.join("testlist01.txt"), "").expect("w");
    // Fold 2 lists the same two clips the other way round: each is still one listed clip.
    fs::write(lists.join("trainlist02.txt"), "").expect("w");
    fs::write(lists.join("testlist02.txt"), "Drumming/v_Drumming_g01_c02.avi\nBowling/v_Bowling_g01_c01 copy.avi\n")
        .expect("w");
    let r = prepare(&opts(DatasetKind::Ucf101, &root, &tmp.path().join("out"))).expect("ucf");
    let why = reasons(&r);
    assert_eq!((r.listed, r.indexed), (3, 2), "{why:?}");
    assert!(why.iter().any(|w| w.contains("Drumming/v_Drumming_g01_c02.avi") && w.contains("not found")), "{why:?}");
    let m = Manifest::load(&tmp.path().join("out/manifest_fold1.jsonl")).expect("manifest");
    let ids: Vec<&str> = m.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, vec!["v_Bowling_g01_c01 copy", "v_HandStandPushups_g01_c01"]);

    // HMDB51: a name with spaces, and a split mark that is not 0, 1 or 2.
    let root = tmp.path().join("hmdb");
    clip(&root.join("laugh"), "Big Fish_laugh_h_nm_np1_fr_goo_0.avi", true);
    clip(&root.join("laugh"), "other_laugh.avi", true);
    // A class folder with subfolders.
    clip(&root.join("laugh").join("extra").join("a"), "deep_laugh.avi", true);
    let splits = root.join("testTrainMulti_7030_splits");
    mkdirs(&splits);
    fs::write(
        splits.join("laugh_test_split1.txt"),
        "Big Fish_laugh_h_nm_np1_fr_goo_0.avi 1 \nother_laugh.avi 7\ndeep_laugh.avi 2\n",
    )
    .expect("w");
    let r = prepare(&opts(DatasetKind::Hmdb51, &root, &tmp.path().join("hout"))).expect("hmdb");
    let why = reasons(&r);
    assert_eq!((r.listed, r.indexed), (3, 2), "{why:?}");
    assert!(
        why.iter().any(|w| w.contains("laugh_test_split1.txt:2") && w.contains("unknown split mark '7'")),
        "{why:?}"
    );
}

#[test]
fn bad_annotation_rows_are_reported_and_the_rest_is_indexed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("k");
    let v = root.join("videos");
    clip(&v, "aaaaaaaaaaa_000000_000010.mp4", true);
    // A failed download (empty) beside the good copy of the same clip: the good one is used.
    tone_clip(&v, "bbbbbbbbbbb_000000_000010.mp4", 440.0);
    fs::write(v.join("bbbbbbbbbbb_000000_000010.mkv"), b"").expect("w");
    mkdirs(&root.join("annotations"));
    fs::write(
        root.join("annotations/train.csv"),
        "label,youtube_id,time_start,time_end,split\nbowling,aaaaaaaaaaa,0,10,train\nbowling,,0,10,train\n\
         singing,bbbbbbbbbbb,0,10,train\nbowling,ccccccccccc,x,10,train\nzumba,ddddddddddd,0,10,train\n\
         bowling,eeeeeeeeeee,0,10,holdout\n",
    )
    .expect("w");
    let out = tmp.path().join("out");
    let r = prepare(&opts(DatasetKind::K400, &root, &out)).expect("k400");
    let why = reasons(&r);
    assert_eq!((r.listed, r.indexed, why.len()), (6, 2, 4), "{why:?}");
    assert!(why.iter().any(|w| w.contains("train.csv:3") && w.contains("empty youtube_id")), "{why:?}");
    assert!(why.iter().any(|w| w.contains("train.csv:5") && w.contains("bad time_start")), "{why:?}");
    assert!(why.iter().any(|w| w.contains("train.csv:7") && w.contains("unknown split 'holdout'")), "{why:?}");
    // Class indices come from the annotation, not from what was downloaded: "zumba" (only missing clips) counts.
    assert_eq!(fs::read_to_string(out.join("classes.txt")).expect("classes"), "bowling\nsinging\nzumba\n");
    let m = Manifest::load(&out.join("manifest.jsonl")).expect("manifest");
    assert!(m.entries.iter().any(|e| e.video.extension().is_some_and(|x| x == "mp4") && e.id.starts_with("bbb")));

    // VGGSound: a short row and an unknown split are reported, the rest indexed.
    let vroot = tmp.path().join("vgg");
    tone_clip(&vroot, "fffffffffff_000000.mp4", 440.0);
    fs::write(vroot.join("vggsound.csv"), "fffffffffff,0,dog,train\nggggggggggg,0,cat\nhhhhhhhhhhh,0,owl,holdout\n")
        .expect("w");
    let r = prepare(&opts(DatasetKind::Vggsound, &vroot, &tmp.path().join("vout"))).expect("vgg");
    let why = reasons(&r);
    assert_eq!((r.listed, r.indexed, why.len()), (3, 1, 2), "{why:?}");
    assert!(why.iter().any(|w| w.contains("vggsound.csv:2") && w.contains("expected youtube_id")), "{why:?}");
    assert!(why.iter().any(|w| w.contains("vggsound.csv:3") && w.contains("unknown split 'holdout'")), "{why:?}");

    // The output folder may not be the root (it would be skipped as output, hiding every video).
    let e = prepare(&opts(DatasetKind::Vggsound, &vroot, &vroot)).expect_err("out = root");
    assert!(e.to_string().contains("the output folder is the dataset root"), "{e}");
}

#[cfg(unix)]
#[test]
fn a_fifo_named_like_a_clip_is_reported_not_read() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("k");
    let dir = root.join("train").join("bowling");
    clip(&dir, "ok.mp4", true);
    let fifo = dir.join("pipe.mp4");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let r = prepare(&opts(DatasetKind::K400, &root, &tmp.path().join("out"))).expect("prepare");
    let why = reasons(&r);
    assert_eq!((r.listed, r.indexed), (2, 1), "{why:?}");
    assert!(why.iter().any(|w| w.contains("pipe.mp4") && w.contains("not a regular file")), "{why:?}");
}
