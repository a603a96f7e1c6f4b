//! The real-data path as a new user takes it: Kinetics-Sounds, HMDB51 and UCF101 folders in their official layouts
//! (written here with the ffmpeg command-line tool: real containers and codecs, some files without audio, a broken
//! one, a missing one), `svaclr prepare` on each, then `svaclr reproduce table1 --preset paper-tiny`; and the paper
//! preset with nothing prepared.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use super::{svaclr, workspace};

/// One media file to write: `seconds` of ffmpeg's test pattern at `size` and `fps` with the video codec arguments
/// `video`, and a sine tone when `audio` is given.
struct Media {
    path: PathBuf,
    size: &'static str,
    fps: u32,
    seconds: f64,
    video: &'static [&'static str],
    audio: Option<Tone>,
}

/// A tone of `hz` at `rate` Hz with `channels` channels, encoded with the codec arguments `codec`.
struct Tone {
    hz: u32,
    rate: u32,
    channels: u32,
    codec: &'static [&'static str],
}

const H264: &[&str] = &["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"];
const MPEG4: &[&str] = &["-c:v", "mpeg4", "-q:v", "6"];
const AAC: &[&str] = &["-c:a", "aac"];
const MP3: &[&str] = &["-c:a", "libmp3lame"];

impl Media {
    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> =
            ["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi", "-i"].map(String::from).to_vec();
        a.push(format!("testsrc2=size={}:rate={}:duration={}", self.size, self.fps, self.seconds));
        if let Some(t) = &self.audio {
            a.extend(["-f", "lavfi", "-i"].map(String::from));
            a.push(format!("sine=frequency={}:sample_rate={}:duration={}", t.hz, t.rate, self.seconds));
        }
        a.extend(self.video.iter().map(|s| s.to_string()));
        if let Some(t) = &self.audio {
            a.extend(["-ac".to_string(), t.channels.to_string()]);
            a.extend(t.codec.iter().map(|s| s.to_string()));
            a.push("-shortest".into());
        }
        a.push(self.path.to_string_lossy().into_owned());
        a
    }
}

/// Write every file of `media` with the ffmpeg command-line tool, two at a time (`cargo xtask setup` installs it).
fn write_all(media: &[Media]) {
    for m in media {
        std::fs::create_dir_all(m.path.parent().expect("folder")).expect("mkdir");
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while let Some(m) = media.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let out = Command::new("ffmpeg").args(m.args()).output().expect("the ffmpeg command-line tool");
                    assert!(out.status.success(), "{}: {}", m.path.display(), String::from_utf8_lossy(&out.stderr));
                }
            });
        }
    });
}

/// Cut `path` to a third of its bytes, as an interrupted download leaves it.
fn truncate(path: &Path) {
    let bytes = std::fs::read(path).expect("read");
    std::fs::write(path, &bytes[..bytes.len() / 3]).expect("write");
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("folder")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn tone(hz: u32, rate: u32, channels: u32, codec: &'static [&'static str]) -> Option<Tone> {
    Some(Tone { hz, rate, channels, codec })
}

/// What a layout should index: usable clips, of which video-only, and the file names `prepare` must report.
struct Expected {
    indexed: usize,
    video_only: usize,
    unusable: Vec<String>,
}

/// Kinetics-Sounds as the Kinetics downloaders leave it: `annotations/{train,validate}.csv` (Kinetics' header) and
/// `train|val/<label>/<youtube_id>_<start:06>_<end:06>.<ext>`. Three Kinetics-Sounds classes, 4 training and 2
/// validation clips each; among them a Matroska file with 5.1 AAC at 48 kHz and a clip stored as `<youtube_id>.mp4`.
/// Also: a training clip without audio, a truncated one, one listed but not downloaded, and a row of a class that
/// is not in Kinetics-Sounds (left out without a word).
fn kinetics_sounds(root: &Path) -> (Vec<Media>, Expected) {
    let header = "label,youtube_id,time_start,time_end,split,is_cc\n";
    let (mut train, mut val) = (header.to_string(), header.to_string());
    let mut media = Vec::new();
    for (c, label) in ["playing drums", "bowling", "playing piano"].into_iter().enumerate() {
        for k in 0..6 {
            let id = format!("yt{c}{k}-_Ab9x");
            let (csv, split, folder) = if k < 4 { (&mut train, "train", "train") } else { (&mut val, "val", "val") };
            let quoted = if c == 2 { format!("\"{label}\"") } else { label.to_string() };
            csv.push_str(&format!("{quoted},{id},{},{},{split},0\n", 10 * k, 10 * k + 10));
            let stem = if (c, k) == (1, 0) { id.clone() } else { format!("{id}_{:06}_{:06}", 10 * k, 10 * k + 10) };
            let dir = root.join(folder).join(label);
            let hz = 300 + 200 * c as u32 + 20 * k;
            media.push(if (c, k) == (0, 0) {
                Media {
                    path: dir.join(format!("{stem}.mkv")),
                    size: "640x360",
                    fps: 30,
                    seconds: 3.0,
                    video: H264,
                    audio: tone(hz, 48000, 6, AAC),
                }
            } else {
                Media {
                    path: dir.join(format!("{stem}.mp4")),
                    size: "96x72",
                    fps: 25,
                    seconds: 3.0,
                    video: H264,
                    audio: tone(hz, 44100, 1 + k % 2, AAC),
                }
            });
        }
    }
    let odd = |id: &str, label: &str| format!("{label},{id},0,10,train,0\n");
    train.push_str(&odd("silent-clip", "bowling"));
    media.push(Media {
        path: root.join("train/bowling/silent-clip_000000_000010.mp4"),
        size: "96x72",
        fps: 25,
        seconds: 3.0,
        video: H264,
        audio: None,
    });
    train.push_str(&odd("broken-clip", "bowling"));
    media.push(Media {
        path: root.join("train/bowling/broken-clip_000000_000010.mp4"),
        size: "96x72",
        fps: 25,
        seconds: 3.0,
        video: H264,
        audio: tone(440, 44100, 1, AAC),
    });
    train.push_str(&odd("never-downloaded", "playing drums"));
    train.push_str(&odd("abseiling-clip", "abseiling"));
    media.push(Media {
        path: root.join("train/abseiling/abseiling-clip_000000_000010.mp4"),
        size: "96x72",
        fps: 25,
        seconds: 3.0,
        video: H264,
        audio: tone(440, 44100, 1, AAC),
    });
    write(&root.join("annotations/train.csv"), &train);
    write(&root.join("annotations/validate.csv"), &val);
    let unusable = ["silent-clip", "broken-clip", "never-downloaded"].map(String::from).to_vec();
    (media, Expected { indexed: 18, video_only: 0, unusable })
}

/// HMDB51: `<class>/<video>.avi` (MPEG-4 part 2 at 320x240, MP3 audio in some) and
/// `testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt` (1 train, 2 test, 0 unused). Three classes of five
/// videos, names as HMDB51 spells them; a truncated one more in `clap`, listed for training in every fold. Each
/// fold tests 1, 2 and 3 videos of the classes in turn, so that the folds' test sets differ in their class mix (a
/// classifier's top-1 differs between folds, and their mean differs from any one of them).
fn hmdb51(root: &Path) -> (Vec<Media>, Expected) {
    let mut media = Vec::new();
    for (c, class) in ["brush_hair", "clap", "jump"].into_iter().enumerate() {
        let names: Vec<String> = (0..5).map(|k| format!("#{k}_Rhythm_{class}_u_nm_np1_fr_goo_{k}.avi")).collect();
        for (k, name) in names.iter().enumerate() {
            let audio = if k % 2 == 1 { tone(440 + 100 * k as u32, 44100, 2, MP3) } else { None };
            media.push(Media {
                path: root.join(class).join(name),
                size: "320x240",
                fps: 30,
                seconds: 2.5,
                video: MPEG4,
                audio,
            });
        }
        for fold in 1..=3 {
            let tested = (c + fold) % 3 + 1;
            let mark = |k: usize| match (k + fold) % 5 {
                p if p < tested => "2",
                p if p == tested && tested < 3 => "0",
                _ => "1",
            };
            let marks: Vec<String> = names.iter().enumerate().map(|(k, n)| format!("{n} {}", mark(k))).collect();
            let mut text = marks.join(" \n") + " \n";
            if class == "clap" {
                text.push_str("broken_clap_video.avi 1 \n");
            }
            write(&root.join(format!("testTrainMulti_7030_splits/{class}_test_split{fold}.txt")), &text);
        }
    }
    media.push(Media {
        path: root.join("clap/broken_clap_video.avi"),
        size: "320x240",
        fps: 30,
        seconds: 2.5,
        video: MPEG4,
        audio: None,
    });
    (media, Expected { indexed: 15, video_only: 9, unusable: vec!["broken_clap_video.avi".into()] })
}

/// UCF101: `UCF-101/<Class>/v_<Class>_gGG_cCC.avi` and `ucfTrainTestlist/{classInd.txt, trainlist0N.txt,
/// testlist0N.txt}`; fold N tests on group N. Three classes of four groups; Drumming's videos have sound.
fn ucf101(root: &Path) -> (Vec<Media>, Expected) {
    let classes = ["ApplyEyeMakeup", "Basketball", "Drumming"];
    let mut media = Vec::new();
    let lists = root.join("ucfTrainTestlist");
    let class_ind: String = classes.iter().enumerate().map(|(i, c)| format!("{} {c}\r\n", i + 1)).collect();
    write(&lists.join("classInd.txt"), &class_ind);
    let (mut train, mut test) = (vec![String::new(); 3], vec![String::new(); 3]);
    for (i, class) in classes.into_iter().enumerate() {
        for g in 1..=4 {
            let rel = format!("{class}/v_{class}_g{g:02}_c01.avi");
            let audio = (class == "Drumming").then(|| Tone { hz: 200 * g, rate: 44100, channels: 2, codec: MP3 });
            media.push(Media {
                path: root.join("UCF-101").join(&rel),
                size: "320x240",
                fps: 25,
                seconds: 2.5,
                video: MPEG4,
                audio,
            });
            for fold in 0..3 {
                if g == fold as u32 + 1 {
                    test[fold].push_str(&format!("{rel}\r\n"));
                } else {
                    train[fold].push_str(&format!("{rel} {}\r\n", i + 1));
                }
            }
        }
    }
    for fold in 0..3 {
        write(&lists.join(format!("trainlist{:02}.txt", fold + 1)), &train[fold]);
        write(&lists.join(format!("testlist{:02}.txt", fold + 1)), &test[fold]);
    }
    (media, Expected { indexed: 12, video_only: 8, unusable: Vec::new() })
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run svaclr");
    assert!(
        out.status.success(),
        "{:?} failed:\n{}",
        cmd.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `svaclr prepare --dataset NAME --root ROOT --out OUT` and its report against what the layout holds.
fn prepare(name: &str, root: &Path, out: &Path, expected: &Expected) {
    let printed = run(svaclr()
        .args(["prepare", "--quiet", "--threads", "2", "--dataset", name, "--root"])
        .arg(root)
        .arg("--out")
        .arg(out));
    let report = json(&out.join("prepare_report.json"));
    let unusable = report["unusable"].as_array().expect("unusable");
    let n = |k: &str| report[k].as_u64().unwrap_or(u64::MAX) as usize;
    assert_eq!(n("listed"), n("indexed") + unusable.len(), "{report}");
    assert_eq!((n("indexed"), n("video_only")), (expected.indexed, expected.video_only), "{name}: {report}");
    assert_eq!(unusable.len(), expected.unusable.len(), "{name}: {report}");
    for file in &expected.unusable {
        assert!(
            unusable.iter().any(|u| u["path"].as_str().is_some_and(|p| p.contains(file.as_str()))),
            "{file}: {report}"
        );
    }
    assert!(String::from_utf8_lossy(&printed.stdout).contains(&format!("prepare {name}:")));
}

/// The entries of `split` in the manifest `path`.
fn count(path: &Path, split: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|e| e["split"] == split).count()
}

/// A downstream evaluation's results.json: three folds, each tested on its fold manifest's whole test split with
/// 2 clips x 3 crops per video; returns the mean of the folds' top-1, in percent.
fn fold_mean(eval_dir: &Path, hmdb: &Path) -> (f64, Vec<f64>) {
    let r = json(&eval_dir.join("results.json"));
    let folds = r["folds"].as_array().expect("folds");
    let names: Vec<&str> = folds.iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(names, ["fold1", "fold2", "fold3"], "{}", eval_dir.display());
    for (i, f) in folds.iter().enumerate() {
        let manifest = hmdb.join(format!("manifest_fold{}.jsonl", i + 1));
        assert_eq!(f["test_videos"].as_u64(), Some(count(&manifest, "test") as u64), "{f}");
        assert_eq!(f["train_videos"].as_u64(), Some(count(&manifest, "train") as u64), "{f}");
        assert_eq!(f["views_per_video"].as_u64(), Some(6), "2 clips x 3 crops: {f}");
    }
    let top1: Vec<f64> = folds.iter().map(|f| 100.0 * f["top1"].as_f64().unwrap_or(f64::NAN)).collect();
    (top1.iter().sum::<f64>() / top1.len() as f64, top1)
}

/// The one `eval-downstream-*` folder in `dir`.
fn downstream_dir(dir: &Path) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("run folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("eval-downstream-")))
        .collect();
    assert_eq!(found.len(), 1, "{}: {found:?}", dir.display());
    found[0].clone()
}

fn reproduce(table: &str, preset: &str, data: &Path, out: &Path) -> Command {
    let mut c = svaclr();
    c.args(["reproduce", table, "--preset", preset, "--configs"]).arg(workspace().join("configs"));
    c.arg("--data-root").arg(data).arg("--out").arg(out);
    c
}

#[test]
fn prepare_then_reproduce_table1_paper_tiny_on_official_layouts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (downloads, data, out) = (tmp.path().join("downloads"), tmp.path().join("data"), tmp.path().join("results"));
    let mut media = Vec::new();
    let mut layouts = Vec::new();
    let makers: [(&str, &str, fn(&Path) -> (Vec<Media>, Expected)); 3] = [
        ("kinetics-sounds", "kinetics-sounds", kinetics_sounds),
        ("hmdb51", "hmdb51", hmdb51),
        ("ucf101", "UCF101", ucf101),
    ];
    for (name, folder, make) in makers {
        let root = downloads.join(folder);
        let (files, expected) = make(&root);
        media.extend(files);
        layouts.push((name, root, expected));
    }
    write_all(&media);
    truncate(&downloads.join("kinetics-sounds/train/bowling/broken-clip_000000_000010.mp4"));
    truncate(&downloads.join("hmdb51/clap/broken_clap_video.avi"));
    for (name, root, expected) in &layouts {
        prepare(name, root, &data.join(name), expected);
    }

    run(&mut reproduce("table1", "paper-tiny", &data, &out));
    let table = json(&out.join("table1.json"));
    let rows = table["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 5);
    let hmdb = data.join("hmdb51");
    let ks = data.join("kinetics-sounds/manifest.jsonl");
    let mut evaluated = Vec::new();
    for r in rows {
        let run_dir = PathBuf::from(r["runs"][0].as_str().expect("run folder"));
        let cfg = json(&run_dir.join("config.json"));
        assert_eq!((cfg["split"].as_str(), cfg["manifest"].as_str()), (Some("train"), ks.to_str()), "{cfg}");
        evaluated.push((r, downstream_dir(&run_dir), run_dir.join("eval-retrieval")));
    }
    let runs = out.join("runs/paper-tiny");
    let baseline = std::fs::read_dir(&runs)
        .expect("runs")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("baseline-")))
        .expect("the baseline's folder");
    evaluated.push((&table["baseline"], downstream_dir(&baseline), baseline.join("eval-retrieval")));
    let mut unequal_folds = false;
    for (r, downstream, retrieval) in evaluated {
        // The downstream column is the mean over HMDB51's three folds (the protocol's), read from each fold.
        let table_top1 = r["ours"]["downstream_top1"]["mean"].as_f64().expect("downstream top-1");
        let (mean, folds) = fold_mean(&downstream, &hmdb);
        assert!(
            table_top1.is_finite() && (table_top1 - mean).abs() < 1e-9,
            "{}: {table_top1} vs the folds' mean {mean} ({folds:?})",
            r["name"]
        );
        unequal_folds |= folds.iter().any(|f| (f - folds[0]).abs() > 1e-9);
        let v2a = r["ours"]["v2a_r1"]["mean"].as_f64().expect("v2a R@1");
        assert!(v2a.is_finite() && (0.0..=100.0).contains(&v2a), "{r}");
        // Retrieval ran on the Kinetics-Sounds test set: the validation split, every clip of it.
        let ret = json(&retrieval.join("results.json"));
        assert_eq!(ret["split"], "val");
        assert_eq!(ret["queries"].as_u64(), Some(count(&ks, "val") as u64), "{ret}");
        assert!((100.0 * ret["v2a"]["1"].as_f64().unwrap_or(f64::NAN) - v2a).abs() < 1e-9);
    }
    // The folds' test sets differ in their class mix: some evaluation's folds differ, so that the check above tells
    // the mean from any one fold.
    assert!(unequal_folds, "every evaluation scored alike on the three folds");
    let md = std::fs::read_to_string(out.join("table1.md")).expect("table1.md");
    assert_eq!(crate::first_table_rows(&md), 1 + 5 + 1, "{md}");
    assert!(md.contains("validation split") && md.contains("3 official folds"), "{md}");

    // The dry run's disk estimate against what the runs keep.
    let plan = run(reproduce("table1", "paper-tiny", &data, &out).arg("--dry-run"));
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(!plan.contains("not prepared") && !plan.contains("warning"), "{plan}");
    let estimate: f64 = plan
        .lines()
        .find_map(|l| l.strip_prefix("disk: ")?.rsplit_once(" = ")?.1.strip_suffix(" MB")?.parse().ok())
        .expect("disk estimate in MB");
    let kept: u64 =
        rows.iter().map(|r| dir_bytes(&PathBuf::from(r["runs"][0].as_str().unwrap_or("")).join("checkpoints"))).sum();
    let ratio = estimate * 1e6 / kept as f64;
    assert!((0.9..1.1).contains(&ratio), "estimated {estimate} MB, the runs keep {kept} bytes");
    // Table 2's plan finds UCF101's three folds too.
    let t2 = run(reproduce("table2", "paper-tiny", &data, &out).arg("--dry-run"));
    let t2 = String::from_utf8_lossy(&t2.stdout);
    assert!(!t2.contains("not prepared") && t2.contains(&data.join("ucf101").display().to_string()), "{t2}");
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

#[test]
fn reproduce_paper_with_missing_datasets_prints_one_prepare_command_each_and_runs_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (data, out) = (tmp.path().join("data"), tmp.path().join("results"));
    // HMDB51 prepared but for its third fold; Kinetics-Sounds and UCF101 not at all.
    let fold = |n: u32, split: &str| {
        format!(
            "{{\"id\":\"v{n}{split}\",\"video\":\"v.avi\",\"audio\":null,\"duration\":2.0,\"fps\":25.0,\"label\":0,\"label_name\":\"clap\",\"split\":\"{split}\"}}\n"
        )
    };
    for n in 1..=2 {
        write(&data.join(format!("hmdb51/manifest_fold{n}.jsonl")), &(fold(n, "train") + &fold(n, "test")));
    }
    for (table, missing) in
        [("table1", vec!["kinetics-sounds", "hmdb51"]), ("table2", vec!["kinetics-sounds", "hmdb51", "ucf101"])]
    {
        let res = reproduce(table, "paper", &data, &out).output().expect("run");
        assert!(!res.status.success(), "{table}");
        let err = String::from_utf8_lossy(&res.stderr);
        let commands: Vec<&str> = err.lines().filter(|l| l.contains("svaclr prepare --dataset")).collect();
        assert_eq!(commands.len(), missing.len(), "{table}: one line per missing dataset:\n{err}");
        for (line, name) in commands.iter().zip(&missing) {
            let command = format!(
                "svaclr prepare --dataset {name} --root <your {name} folder> --out {}",
                data.join(name).display()
            );
            assert!(line.contains(&command), "{line}");
        }
        assert!(commands[1].contains("manifest_fold3.jsonl is missing") && !commands[1].contains("fold2"), "{err}");
        assert!(err.contains("nothing was run"), "{err}");
        assert!(!out.exists(), "nothing is written before the datasets are there");
    }
}
