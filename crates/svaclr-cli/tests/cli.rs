//! The `svaclr` binary as a user runs it: one-line errors, and pre-training that survives `kill -9`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[path = "cli/realdata.rs"]
mod realdata;

mod common;
use common::{losses, smoke_data, svaclr, workspace};

#[test]
fn info_runs_and_missing_backend_is_a_one_line_error() {
    let out = svaclr().arg("info").output().expect("run svaclr");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("backends compiled in: flex"), "{text}");
    if cfg!(feature = "tch") {
        // The LibTorch the build linked, found at run time without LD_LIBRARY_PATH, and a real op on it.
        assert!(text.contains("LibTorch:             2.9.0"), "{text}");
        assert!(text.contains("CUDA device(s) visible to it"), "{text}");
        let out =
            svaclr().args(["info", "--device", "tch-cpu"]).env_remove("LD_LIBRARY_PATH").output().expect("run svaclr");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("device check:         tch-cpu ok"));
    } else {
        assert!(text.contains("LibTorch:             not in this build"), "{text}");
        let out = svaclr().args(["info", "--device", "tch-cpu"]).output().expect("run svaclr");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("tch"), "{err}");
    }
}

#[test]
fn kill_9_then_resume_continues_the_same_loss_curve() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = smoke_data(tmp.path());
    let manifest = data.join("pretrain.jsonl");
    let cfg = workspace().join("configs/pretrain/smoke.json");
    let steps = "6";
    let pretrain = |out: &Path, resume: bool| {
        let mut c = svaclr();
        c.args(["pretrain", "--quiet", "--max-steps", steps, "--config"]).arg(&cfg).arg("--manifest").arg(&manifest);
        c.arg("--out").arg(out);
        if resume {
            c.arg("--resume");
        }
        c
    };
    // The uninterrupted reference.
    let full = tmp.path().join("full");
    assert!(pretrain(&full, false).stdout(Stdio::null()).status().expect("pretrain").success());
    let reference = losses(&full);
    assert_eq!(reference.len(), 6);

    // Kill -9 as soon as the step-2 checkpoint exists and step 3 has started, then resume.
    let cut = tmp.path().join("cut");
    let mut child = pretrain(&cut, false).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    let t0 = Instant::now();
    loop {
        let ckpt = cut.join("checkpoints/last.json");
        if ckpt.exists() && losses(&cut).len() >= 3 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(300) || child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = child.try_wait().ok().flatten().is_none();
    let _ = child.kill(); // SIGKILL on Unix
    let _ = child.wait();
    assert!(killed, "the run finished before it could be killed; the test needs a longer run");
    assert!(losses(&cut).len() < 6);
    let out = pretrain(&cut, true).output().expect("resume");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(losses(&cut), reference, "resumed curve must equal the uninterrupted one");
    // smoke.json's monitor (a fixed set scored at step 0 and each epoch end) resumes the same way: the same records,
    // the loss and top-1 bit for bit (the cosine statistics are f64 sums in a thread-dependent order: to 1e-12).
    let monitor = |run: &Path| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(run.join("monitor.jsonl")).expect("monitor.jsonl");
        text.lines().map(|l| serde_json::from_str(l).expect("monitor record")).collect()
    };
    let (resumed, whole) = (monitor(&cut), monitor(&full));
    let steps = |rs: &[serde_json::Value]| rs.iter().map(|r| r["step"].as_u64().unwrap_or(99)).collect::<Vec<_>>();
    assert_eq!(steps(&whole), [0, 2, 4, 6], "64 clips, batch 32: step 0 and the ends of epochs 0-2");
    assert_eq!(steps(&resumed), steps(&whole));
    for (r, w) in resumed.iter().zip(&whole) {
        assert_eq!((&r["loss"], &r["top1_acc"]), (&w["loss"], &w["top1_acc"]), "step {}", w["step"]);
        for k in ["pos_sim", "neg_sim", "lambda_mean"] {
            let (a, b) = (r[k].as_f64().unwrap_or(f64::NAN), w[k].as_f64().unwrap_or(0.0));
            assert!((a - b).abs() < 1e-12, "step {} {k}: resumed {a} vs {b}", w["step"]);
        }
    }
}

// What README tells a user to run after `cargo xtask build --features tch`: the smoke config on LibTorch's CPU device,
// with no LD_LIBRARY_PATH (the binary carries LibTorch's directory as its run-time search path).
#[cfg(feature = "tch")]
#[test]
fn pretrain_on_tch_cpu_without_a_library_path() {
    use common::{smoke_pretrain, summary};
    let tmp = tempfile::tempdir().expect("tempdir");
    let (out, run) = smoke_pretrain(tmp.path(), "tch-cpu", 3, |cmd| {
        cmd.env_remove("LD_LIBRARY_PATH");
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let curve = losses(&run);
    assert_eq!(curve.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(curve.iter().all(|(_, l)| l.is_finite() && *l > 0.0), "{curve:?}");
    assert_eq!(summary(&run)["device"], "tch-cpu");
}

#[test]
fn pretrain_on_a_device_list_is_checked_before_any_work() {
    // A device list selects data-parallel training in one process; a bad list fails in one line before the run
    // directory is made or the manifest is read (any existing file passes the config's existence check).
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("run");
    let config = workspace().join("configs/pretrain/smoke.json");
    let manifest = workspace().join("Cargo.toml");
    let mut cases =
        vec![("flex,cuda:0", "of one backend"), ("cuda:0,0", "listed twice"), ("flex,gpu", "unknown device")];
    if !cfg!(feature = "cuda") {
        cases.push(("cuda:0,1", "--features cuda"));
    }
    if !cfg!(feature = "wgpu") {
        cases.push(("wgpu", "--features wgpu"));
    }
    for (devices, needle) in cases {
        let res = svaclr()
            .args(["pretrain", "--config"])
            .arg(&config)
            .arg("--manifest")
            .arg(&manifest)
            .arg("--out")
            .arg(&out)
            .args(["--device", devices])
            .output()
            .expect("run");
        assert!(!res.status.success(), "{devices}");
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{devices}: expected '{needle}' in {err}");
        assert!(!out.exists(), "{devices}: no run directory before the devices are known to work");
    }
}

#[test]
fn pretrain_on_a_split_the_manifest_does_not_have_is_a_one_line_error_naming_both() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let manifest = tmp.path().join("manifest.jsonl");
    let line = |split: &str| {
        format!(
            "{{\"id\":\"{split}1\",\"video\":\"v.mp4\",\"audio\":null,\"duration\":3.0,\"fps\":25.0,\"label\":0,\"label_name\":null,\"split\":\"{split}\"}}\n"
        )
    };
    std::fs::write(&manifest, line("train") + &line("val")).expect("write");
    let out = tmp.path().join("run");
    let res = svaclr()
        .args(["pretrain", "--split", "validate", "--config"])
        .arg(workspace().join("configs/pretrain/paper-tiny_s14.json"))
        .arg("--manifest")
        .arg(&manifest)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run");
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let want = format!("{}: no entry is in split 'validate' (its splits: train, val)", manifest.display());
    assert!(err.contains(&want), "{err}");
    assert!(!out.exists(), "no run directory before the split is known to be there");
}

#[test]
fn pretrain_with_a_missing_config_is_a_one_line_error() {
    let out =
        svaclr().args(["pretrain", "--config", "/nonexistent/cfg.json", "--out", "/tmp/never"]).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/cfg.json"), "{err}");
}

#[test]
fn reproduce_table1_smoke_end_to_end() {
    // synth data -> pre-train (5 rows) -> linear probe + retrieval -> baseline -> table.
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("results");
    let run = || {
        svaclr()
            .args(["reproduce", "table1", "--preset", "smoke", "--configs"])
            .arg(workspace().join("configs"))
            .arg("--data-root")
            .arg(tmp.path().join("data"))
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run reproduce")
    };
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("table1.json")).expect("table1.json")).expect("json");
    let rows = table["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 5);
    let in_range = |v: &serde_json::Value| v.as_f64().is_some_and(|x| x.is_finite() && (0.0..=100.0).contains(&x));
    for r in rows.iter().chain(std::iter::once(&table["baseline"])) {
        for key in ["downstream_top1", "v2a_r1", "downstream_knn"] {
            assert!(in_range(&r["ours"][key]["mean"]), "{key} of {}: {}", r["name"], r["ours"][key]);
        }
    }
    for r in rows {
        assert!(r["paper"]["downstream_top1"].as_f64().is_some());
        assert!(r["delta_vs_row1"]["downstream_top1"].as_f64().is_some_and(f64::is_finite));
    }
    let md = std::fs::read_to_string(out.join("table1.md")).expect("table1.md");
    assert_eq!(first_table_rows(&md), 1 + 5 + 1, "header + 5 rows + baseline:\n{md}");
    // Paired comparisons: rows 2-5 against row 1, rows 1-5 against random init and the SoftInfoNCE row against
    // InfoNCE at [1,4] (its `compare_with`), in every column that was run (kNN included); one seed gives no interval,
    // so nothing is established.
    let pairs = table["comparisons"]["pairs"].as_array().expect("comparisons");
    let run_columns = 3;
    assert_eq!(pairs.len(), (4 + 5 + 1) * run_columns, "{pairs:?}");
    assert_eq!(pairs.iter().filter(|p| p["against"] == "s=[1,4]" && p["row"] == "[1,4] Soft").count(), run_columns);
    assert!(pairs.iter().all(|p| p["diff"]["ci95"].is_null() && p["established"] == false), "{pairs:?}");
    assert!(md.contains("## Which rows differ") && md.contains("(1 seed)"), "{md}");
    assert!(out.join("table1.png").exists());
    // Fig. 3 of the SoftInfoNCE row: a few clips, lambda per audio speed 1/2/4, 1 at speed 1 (identical views).
    assert!(out.join("table1_fig3.png").exists());
    let fig: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("table1_fig3.json")).expect("fig3 json")).expect("json");
    let examples = fig["examples"].as_array().expect("examples");
    assert!(!examples.is_empty() && examples.len() <= 4, "{fig}");
    for e in examples {
        let lambda: Vec<f64> = e["lambda"].as_array().expect("lambda").iter().filter_map(|x| x.as_f64()).collect();
        assert_eq!(lambda.len(), 3, "{e}");
        assert!((lambda[0] - 1.0).abs() < 1e-4, "identical views must weigh 1: {e}");
        // "all" mode: the four weights of a clip sum to 4, so one weight lies in (0, 4).
        assert!(lambda.iter().all(|l| l.is_finite() && *l > 0.0 && *l < 4.0), "{e}");
    }
    // lambda measured over every retrieval clip: audio then video sped up by 2 and 4, with intervals.
    let summary = fig["lambda_summary"].as_array().expect("lambda_summary");
    assert_eq!(summary.len(), 4, "{fig}");
    for s in summary {
        let (mean, ci) = (s["mean"].as_f64().unwrap_or(f64::NAN), &s["ci95"]);
        let [lo, hi] = [ci[0].as_f64().unwrap_or(f64::NAN), ci[1].as_f64().unwrap_or(f64::NAN)];
        assert!(s["clips"].as_u64() > Some(1) && lo <= mean && mean <= hi && lo > 0.0 && hi < 4.0, "{s}");
    }
    assert!(md.contains("λ measured"), "{md}");
    // A rerun reuses every finished step.
    let second = run();
    assert!(second.status.success());
    let log = String::from_utf8_lossy(&second.stderr);
    assert!(!log.contains("[run]   row"), "finished rows must not be recomputed:\n{log}");
    assert!(log.contains("[reuse]"), "{log}");
    // Table 3's rows are Table 1's configs: its runs and retrievals are reused, nothing is recomputed.
    let t3 = svaclr()
        .args(["reproduce", "table3", "--preset", "smoke", "--configs"])
        .arg(workspace().join("configs"))
        .arg("--data-root")
        .arg(tmp.path().join("data"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run reproduce table3");
    let log = String::from_utf8_lossy(&t3.stderr);
    assert!(t3.status.success(), "{log}");
    let ran: Vec<&str> = log.lines().filter(|l| l.starts_with("[run]") && !l.contains("SynthAV")).collect();
    assert!(ran.is_empty(), "table3 must reuse table1's runs and retrievals, ran {ran:?}:\n{log}");
    let t3: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("table3.json")).expect("table3.json")).expect("json");
    assert_eq!(t3["rows"].as_array().map(Vec::len), Some(2));
    assert_eq!(t3["published"].as_array().map(Vec::len), Some(4));
    for r in t3["rows"].as_array().into_iter().flatten().chain(std::iter::once(&t3["baseline"])) {
        for dir in ["v2a", "a2v"] {
            let mut last = 0.0;
            for k in [1, 5, 10, 20] {
                let v = &r["ours"][format!("{dir}_r{k}")]["mean"];
                assert!(in_range(v), "{dir} R@{k} of {}: {v}", r["name"]);
                let x = v.as_f64().unwrap_or(0.0);
                assert!(x >= last, "R@K must not fall as K grows: {r}");
                last = x;
            }
        }
    }
    let md = std::fs::read_to_string(out.join("table3.md")).expect("table3.md");
    assert_eq!(first_table_rows(&md), 1 + 4 + 2 + 1, "header + 4 published + 2 ours + baseline:\n{md}");
}

/// Rows of a Markdown file's first table (its header included, its rule not).
fn first_table_rows(md: &str) -> usize {
    md.lines()
        .skip_while(|l| !l.starts_with("| "))
        .take_while(|l| l.starts_with('|'))
        .filter(|l| l.starts_with("| "))
        .count()
}

#[test]
fn reproduce_table2_dry_run_plans_four_rows_at_their_resolutions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = svaclr()
        .args(["reproduce", "table2", "--preset", "smoke", "--dry-run", "--configs"])
        .arg(workspace().join("configs"))
        .arg("--data-root")
        .arg(tmp.path().join("data"))
        .arg("--out")
        .arg(tmp.path().join("results"))
        .output()
        .expect("run reproduce --dry-run");
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(plan.matches(": pre-train\n").count(), 4, "{plan}");
    for cfg in ["smoke_r3d18_lo.json", "smoke_r3d18_hi.json", "smoke_r21d18_lo.json", "smoke_r21d18_hi.json"] {
        assert!(plan.contains(cfg), "{cfg} missing:\n{plan}");
    }
    // The 24 px rows are evaluated with a downstream config rewritten to their resolution; the 32 px rows with the
    // config as it is.
    assert!(plan.contains("smoke_linear-crop24-short30.json"), "{plan}");
    assert!(plan.contains("finetune/smoke_linear.json"), "{plan}");
    assert!(!tmp.path().join("results").exists(), "a dry run writes nothing");
}
