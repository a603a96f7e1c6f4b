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
