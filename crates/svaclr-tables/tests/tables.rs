//! The repository's configs as the code reads them: every file under configs/ parses into its type, without the
//! filesystem (the manifests they name need not exist).

use std::path::{Path, PathBuf};

use svaclr_eval::FinetuneConfig;
use svaclr_tables::TableSpec;
use svaclr_train::PretrainConfig;

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_config_parses_into_its_type() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut parsed = 0;
    for entry in std::fs::read_dir(&configs).expect("configs/").flatten() {
        let dir = entry.path();
        let kind = entry.file_name().to_string_lossy().into_owned();
        assert!(dir.is_dir(), "{}: configs/ holds only pretrain/, finetune/, tables/ and bench/", dir.display());
        for file in json_files(&dir) {
            let text = std::fs::read_to_string(&file).expect("read");
            let result = match kind.as_str() {
                // bench/: pre-training configs that only `cargo xtask bench pretrain --config` reads.
                "pretrain" | "bench" => PretrainConfig::parse(&text, &file, None).map(drop).map_err(|e| e.to_string()),
                "finetune" => FinetuneConfig::parse(&text, &file, None).map(drop).map_err(|e| e.to_string()),
                "tables" => TableSpec::parse(&text, &file).map(drop).map_err(|e| e.to_string()),
                _ => panic!("{}: which type is configs/{kind}/?", file.display()),
            };
            if let Err(e) = result {
                panic!("{e}");
            }
            parsed += 1;
        }
    }
    assert!(parsed >= 30, "expected the pretrain, finetune and table configs, parsed {parsed}");
}
