//! Unit tests of [`plan`](super::plan): the repository's table files and small made-up ones, planned without running.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::*;

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

fn request(table: &str, seeds: u64) -> Request {
    Request {
        table: table.into(),
        preset: "smoke".into(),
        seeds,
        data_root: "/data".into(),
        out: "/out".into(),
        configs: configs(),
        device: "flex".into(),
    }
}

fn plan_of(table: &str, seeds: u64) -> Plan {
    let req = request(table, seeds);
    let spec = TableSpec::load(&req.table_file()).expect("table file");
    plan(&spec, &req).expect("plan")
}

fn args_of(step: &Step) -> Vec<String> {
    match &step.action {
        Action::Synth(a) | Action::Pretrain(a) | Action::Evaluate(a) => {
            a.iter().map(|s: &OsString| s.to_string_lossy().into_owned()).collect()
        }
        _ => Vec::new(),
    }
}

fn count(plan: &Plan, f: impl Fn(&Action) -> bool) -> usize {
    plan.steps.iter().filter(|s| f(&s.action)).count()
}

fn is_pretrain(a: &Action) -> bool {
    matches!(a, Action::Pretrain(_))
}

fn is_evaluate(a: &Action) -> bool {
    matches!(a, Action::Evaluate(_))
}

#[test]
fn table1_smoke_is_synth_then_rows_then_baseline_then_fig3() {
    let p = plan_of("table1", 1);
    // Synth, legacy adoption, 5 x (pre-train, linear probe, retrieval), 1 x baseline (probe, retrieval), Fig. 3.
    assert_eq!(p.steps.len(), 2 + 5 * 3 + 2 + 1);
    assert!(matches!(p.steps[0].action, Action::Synth(_)));
    assert_eq!(
        args_of(&p.steps[0]),
        ["synth", "--preset", "small", "--seed", "0", "--clips", "96", "--out", "/data/synthav-small"]
    );
    assert!(matches!(p.steps[1].action, Action::AdoptLegacyRuns { .. }));
    assert!(matches!(p.steps.last().map(|s| &s.action), Some(Action::Fig3 { .. })));
    assert_eq!(p.figures, [PathBuf::from("/out/table1_fig3.png")]);

    let pre = &p.steps[2];
    let run_dir = &p.rows[0][0].run_dir;
    let name = run_dir.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(run_dir.starts_with("/out/runs/smoke") && name.starts_with("pretrain-") && name.ends_with("-seed0"));
    assert_eq!(&pre.folder, run_dir);
    assert_eq!(pre.done.as_deref(), Some(run_dir.join("summary.json").as_path()));
    assert_eq!(pre.what, "row 1 (no speed), seed 0: pre-train");
    let cfg = configs().join("pretrain/smoke_nospeed.json");
    assert_eq!(
        args_of(pre),
        [
            "pretrain",
            "--quiet",
            "--device",
            "flex",
            "--seed",
            "0",
            "--config",
            &cfg.to_string_lossy(),
            "--manifest",
            "/data/synthav-small/pretrain.jsonl",
            "--out",
            &run_dir.to_string_lossy(),
            "--max-steps",
            "4",
        ]
    );
    // Each run is evaluated in its own folder: the probe keyed by its config's hash, and retrieval.
    let evals = &p.rows[0][0].evals;
    assert_eq!(evals.keys().collect::<Vec<_>>(), ["downstream", RETRIEVAL]);
    assert_eq!(evals[RETRIEVAL], run_dir.join("eval-retrieval"));
    assert!(evals["downstream"].starts_with(run_dir));
    let probe = &p.steps[3];
    assert_eq!(probe.done.as_deref(), Some(evals["downstream"].join("results.json").as_path()));
    let a = args_of(probe);
    assert_eq!(a[..4], ["finetune", "--quiet", "--device", "flex"]);
    assert!(a.contains(&"--data-root".into()) && a.contains(&"/data/synthav-small".into()), "{a:?}");
    assert!(!a.contains(&"--random-init".into()));
    let retrieval = args_of(&p.steps[4]);
    assert!(retrieval.contains(&"/data/synthav-small/retrieval.jsonl".into()), "{retrieval:?}");
    // Five rows, five different configs: five folders.
    let mut dirs: Vec<&PathBuf> = p.rows.iter().map(|r| &r[0].run_dir).collect();
    dirs.dedup();
    assert_eq!(dirs.len(), 5);
}

#[test]
fn seeds_multiply_the_runs_and_the_baseline_follows_each_seed() {
    let p = plan_of("table1", 3);
    assert_eq!(count(&p, is_pretrain), 5 * 3);
    assert_eq!(count(&p, is_evaluate), (5 * 3 + 3) * 2);
    for row in &p.rows {
        assert_eq!(row.len(), 3);
        for (seed, run) in row.iter().enumerate() {
            assert!(run.run_dir.to_string_lossy().ends_with(&format!("-seed{seed}")), "{}", run.run_dir.display());
        }
    }
    // The baseline (model_from_row 0): per seed, the initial weights of row 1's run of that seed.
    assert_eq!(p.baseline.len(), 3);
    for (seed, dirs) in p.baseline.iter().enumerate() {
        let run = &p.rows[0][seed].run_dir;
        let name = run.file_name().and_then(|n| n.to_str()).expect("name");
        let expected = Path::new("/out/runs/smoke").join(format!("baseline-initial-weights-of-{name}"));
        assert!(dirs.values().all(|d| d.starts_with(&expected)), "{dirs:?}");
        let step = p.steps.iter().find(|s| s.folder == dirs[RETRIEVAL]).expect("baseline retrieval step");
        let a = args_of(step);
        assert!(a.contains(&"--random-init".into()) && a.contains(&run.to_string_lossy().into_owned()), "{a:?}");
    }
}

#[test]
fn tables_with_a_common_config_share_its_runs() {
    let t1 = plan_of("table1", 1);
    let t3 = plan_of("table3", 1);
    // Table 3's rows are Table 1's no-speed and SoftInfoNCE rows: the same folders, the same retrieval.
    for (r3, r1) in [(0, 0), (1, 4)] {
        assert_eq!(t3.rows[r3][0].run_dir, t1.rows[r1][0].run_dir);
        assert_eq!(t3.rows[r3][0].evals[RETRIEVAL], t1.rows[r1][0].evals[RETRIEVAL]);
    }
    // Table 3's smoke preset defines no downstream evaluation.
    assert!(t3.rows.iter().all(|r| !r[0].evals.contains_key("downstream")));
}

/// Table 1's file with `edit` applied, written into `dir`.
fn edited_table1(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let text = std::fs::read_to_string(configs().join("tables/table1.json")).expect("table1.json");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
    edit(&mut v);
    let path = dir.join("table1.json");
    std::fs::write(&path, serde_json::to_string(&v).expect("json")).expect("write");
    path
}

#[test]
fn two_rows_with_one_config_share_one_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = edited_table1(tmp.path(), |v| v["rows"][1]["pretrain"] = "{preset}_nospeed.json".into());
    let spec = TableSpec::load(&path).expect("spec");
    let p = plan(&spec, &request("table1", 2)).expect("plan");
    assert_eq!(p.rows[0], p.rows[1]);
    // Each distinct step once: 4 configs x 2 seeds.
    assert_eq!(count(&p, is_pretrain), 4 * 2);
}

#[test]
fn eval_at_pretrain_resolution_rewrites_the_downstream_config_only_where_it_differs() {
    let p = plan_of("table2", 1);
    let writes: Vec<&Step> = p.steps.iter().filter(|s| matches!(s.action, Action::WriteConfig { .. })).collect();
    // The two 24 px rows share one rewritten config; the 32 px rows use the file as it is.
    assert_eq!(writes.len(), 1);
    let Action::WriteConfig { path, text } = &writes[0].action else { unreachable!() };
    assert_eq!(path, Path::new("/out/runs/smoke/eval-configs/smoke_linear-crop24-short30.json"));
    let v: serde_json::Value = serde_json::from_str(text).expect("json");
    assert_eq!((v["train_data"]["crop"].as_u64(), v["test_data"]["short_side"].as_u64()), (Some(24), Some(30)));
    let probes: Vec<Vec<String>> = p.steps.iter().filter(|s| is_evaluate(&s.action)).map(args_of).collect();
    let uses = |cfg: &str| probes.iter().filter(|a| a.iter().any(|x| x.ends_with(cfg))).count();
    // Rows 1 and 3 at 24 px, and the baseline (row 3's model); rows 2 and 4 at 32 px.
    assert_eq!(uses("smoke_linear-crop24-short30.json"), 3);
    assert_eq!(uses("finetune/smoke_linear.json"), 2);
    // The write comes before the first step that reads it.
    let first_reader = p.steps.iter().position(|s| args_of(s).iter().any(|x| x == &path.to_string_lossy()));
    let write_at = p.steps.iter().position(|s| std::ptr::eq(s, writes[0]));
    assert!(write_at < first_reader);
}

#[test]
fn planning_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let req = Request { out: tmp.path().join("results"), data_root: tmp.path().join("data"), ..request("table2", 2) };
    let spec = TableSpec::load(&req.table_file()).expect("spec");
    plan(&spec, &req).expect("plan");
    assert_eq!(std::fs::read_dir(tmp.path()).expect("dir").count(), 0);
}

#[test]
fn every_table_plans_for_every_preset() {
    for table in ["table1", "table2", "table3"] {
        let spec = TableSpec::load(&request(table, 1).table_file()).expect("spec");
        for preset in spec.presets.keys() {
            let req = Request { preset: preset.clone(), ..request(table, 1) };
            let p = plan(&spec, &req).unwrap_or_else(|e| panic!("{table} {preset}: {e}"));
            assert_eq!(p.rows.len(), spec.rows.len());
        }
    }
}

/// The one-line error of a table file edited by `edit`.
fn error_of(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = edited_table1(tmp.path(), edit);
    let e = TableSpec::load(&path).expect_err("a bad table file").to_string();
    assert!(e.starts_with(&path.display().to_string()), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    e
}

fn remove(object: &mut serde_json::Value, key: &str) {
    object.as_object_mut().map(|o| o.remove(key));
}

fn rename(object: &mut serde_json::Value, from: &str, to: &str) {
    if let Some(o) = object.as_object_mut()
        && let Some(v) = o.remove(from)
    {
        o.insert(to.into(), v);
    }
}

#[test]
fn a_misspelt_or_missing_key_is_a_one_line_error_naming_it() {
    let e = error_of(|v| rename(v, "columns", "colums"));
    assert!(e.contains("unknown field `colums`"), "{e}");
    let e = error_of(|v| rename(&mut v["rows"][0], "pretrain", "pretrian"));
    assert!(e.contains("unknown field `pretrian`"), "{e}");
    let e = error_of(|v| remove(&mut v["presets"]["smoke"]["dataset"], "seed"));
    assert!(e.contains("missing field `seed`"), "{e}");
    let e = error_of(|v| v["presets"]["smoke"]["dataset"]["sede"] = 0.into());
    assert!(e.contains("`sede`"), "{e}");
    let e = error_of(|v| remove(&mut v["presets"]["smoke"], "max_steps"));
    assert!(e.contains("missing field `max_steps`"), "{e}");
    let e = error_of(|v| v["baseline"]["model_from_row"] = 5.into());
    assert!(e.contains("baseline.model_from_row 5"), "{e}");
    let e = error_of(|v| v["rows"][2]["cells"]["sped"] = "x".into());
    assert!(e.contains("'sped'"), "{e}");
    let e = error_of(|v| v["columns"][0]["metric"] = "top_1".into());
    assert!(e.contains("top_1"), "{e}");
    let e = error_of(|v| v["columns"][1]["metric"] = "top1".into());
    assert!(e.contains("eval 'retrieval' needs"), "{e}");
    let e = error_of(|v| v["name"] = "table9".into());
    assert!(e.contains("name 'table9'"), "{e}");
    let e = error_of(|v| v["rows"][4]["figure"] = "fig4".into());
    assert!(e.contains("fig4"), "{e}");
    let e =
        error_of(|v| v["presets"]["smoke"]["evals"] = serde_json::json!({"downstrem": "finetune/smoke_linear.json"}));
    assert!(e.contains("'downstrem'"), "{e}");
}

#[test]
fn an_unknown_preset_and_zero_seeds_are_refused() {
    let spec = TableSpec::load(&request("table1", 1).table_file()).expect("spec");
    let e = plan(&spec, &Request { preset: "nope".into(), ..request("table1", 1) }).expect_err("preset").to_string();
    assert!(e.contains("table1.json: no preset 'nope'"), "{e}");
    let e = plan(&spec, &request("table1", 0)).expect_err("seeds").to_string();
    assert!(e.contains("--seeds"), "{e}");
}
