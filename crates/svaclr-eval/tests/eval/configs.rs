//! The shipped evaluation configs and bad-config errors.

use crate::common::*;

// ---------------------------------------------------------------------------------------------------------------
// Configs.

#[test]
fn shipped_configs_parse_and_validate_but_for_their_manifests() {
    let dir = workspace_root().join("configs/finetune");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("configs/finetune") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        n += 1;
        let text = std::fs::read_to_string(&path).expect("read");
        let mut cfg: FinetuneConfig = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Resolve against an empty folder: every check but the manifests' existence must pass.
        let empty = tempfile::tempdir().expect("tempdir");
        cfg.resolve(path.parent().expect("dir"), Some(empty.path()));
        let err = cfg.validate().expect_err("manifests do not exist in an empty folder");
        assert!(err.contains("does not exist"), "{}: {err}", path.display());
    }
    assert!(n >= 5, "expected the paper, synth and smoke configs, found {n}");
}

#[test]
fn paper_configs_follow_gdt() {
    for name in ["hmdb51_paper.json", "ucf101_paper.json"] {
        let path = workspace_root().join("configs/finetune").join(name);
        let cfg: FinetuneConfig = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("parse");
        assert_eq!(cfg.protocol, Protocol::Finetune);
        assert_eq!(cfg.epochs, 12);
        assert_eq!(cfg.folds.len(), 3);
        assert_eq!((cfg.test.clips, cfg.test.crops), (10, 3));
        let s = &cfg.optim.schedule;
        assert!((s.lr(cfg.optim.head_lr, 0) - 2.5e-3).abs() < 1e-12);
        assert!((s.lr(cfg.optim.head_lr, 2) - 2e-2).abs() < 1e-12);
        assert!((s.lr(cfg.optim.head_lr, 6) - 1e-3).abs() < 1e-12);
        assert!((s.lr(cfg.optim.head_lr, 10) - 5e-5).abs() < 1e-12);
        assert_eq!(cfg.optim.momentum, 0.9);
    }
}

#[test]
fn bad_configs_name_the_file_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("configs/finetune/smoke_linear.json")).expect("read"),
    )
    .expect("parse");
    let write = |name: &str, v: &Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_string(v).expect("json")).expect("write");
        p
    };
    let mut unknown = base.clone();
    unknown["learning_rate"] = Value::from(0.1);
    let p = write("unknown.json", &unknown);
    let e = FinetuneConfig::load(&p, Some(dir.path())).expect_err("unknown field").to_string();
    assert!(e.contains("unknown.json") && e.contains("learning_rate"), "{e}");

    let mut speeds = base.clone();
    speeds["train_data"]["speeds"] = serde_json::json!([1, 4]);
    let p = write("speeds.json", &speeds);
    let e = FinetuneConfig::load(&p, Some(dir.path())).expect_err("two views").to_string();
    assert!(e.contains("speeds"), "{e}");

    let e = FinetuneConfig::load(&dir.path().join("missing.json"), None).expect_err("missing").to_string();
    assert!(e.contains("missing.json"), "{e}");

    let p = write("ok.json", &base);
    let e = FinetuneConfig::load(&p, Some(dir.path())).expect_err("no manifests").to_string();
    assert!(e.contains("downstream_train.jsonl") && e.contains("does not exist"), "{e}");
}
