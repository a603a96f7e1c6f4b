//! Tidy checks: cheap repository invariants, run as xtask's unit tests (so `cargo test --workspace` runs them).

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    use crate::util::root;

    fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                files_under(&p, ext, out);
            } else if p.extension().and_then(|s| s.to_str()) == Some(ext) {
                out.push(p);
            }
        }
    }

    // JSON syntax only: xtask links no svaclr crate. svaclr-tables' tests parse each config into its type
    // (`every_config_parses_into_its_type`) and plan every table for every preset
    // (`every_table_plans_for_every_preset`).
    #[test]
    fn every_config_parses_as_json() {
        let mut files = Vec::new();
        files_under(&root().join("configs"), "json", &mut files);
        for f in &files {
            let text = fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
                panic!("{}: not valid JSON: {e}", f.display());
            }
        }
    }

    #[test]
    fn every_crate_lib_starts_with_a_doc_comment() {
        let crates = root().join("crates");
        let mut checked = 0;
        for e in fs::read_dir(&crates).expect("crates/ exists").flatten() {
            let lib = e.path().join("src/lib.rs");
            let main = e.path().join("src/main.rs");
            let file = if lib.exists() { lib } else { main };
            let text = fs::read_to_string(&file).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
            assert!(text.trim_start().starts_with("//!"), "{} must open with a `//!` doc comment", file.display());
            checked += 1;
        }
        assert!(checked >= 6, "expected the six svaclr crates, found {checked}");
    }

    #[test]
    fn no_project_file_reaches_into_shared() {
        // A user's clone has no shared folder beside it: code, scripts and configs must use in-project copies.
        let mut files = Vec::new();
        for ext in ["rs", "py", "json", "toml", "sh"] {
            for dir in ["crates", "xtask", "configs", "scripts", ".ci"] {
                files_under(&root().join(dir), ext, &mut files);
            }
        }
        let needle = ["..", "/shared/"].concat();
        for f in files {
            let text = fs::read_to_string(&f).unwrap_or_default();
            assert!(!text.contains(&needle), "{} refers to {needle}", f.display());
        }
    }

    #[test]
    fn xtask_never_links_burn_or_svaclr() {
        let manifest = fs::read_to_string(root().join("xtask/Cargo.toml")).expect("xtask manifest");
        let deps = manifest.split("[dependencies]").nth(1).unwrap_or("");
        for forbidden in ["burn", "svaclr"] {
            assert!(
                !deps.lines().any(|l| l.trim_start().starts_with(forbidden)),
                "xtask must not depend on {forbidden}"
            );
        }
    }
}
