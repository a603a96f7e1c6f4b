//! Build script shared by every svaclr crate that links Burn (`build = "../../build/torch_rpath.rs"`).
//!
//! With the crate's `tch` feature on, LibTorch is linked dynamically (torch-sys links `libtorch_cpu.so` and friends
//! from wherever it found them: the PyTorch venv with `LIBTORCH_USE_PYTORCH=1`, `LIBTORCH`, or its own download) and
//! nothing records where they live, so binaries and test executables would need `LD_LIBRARY_PATH` at run time.
//! This script reads the directory torch-sys linked against (`DEP_TCH_LIBTORCH_LIB`, metadata of its `links = "tch"`
//! key; the crate names torch-sys as a direct, optional dependency to receive it) and writes it into every
//! executable of the crate as a run-time search path (`-Wl,-rpath`). It also exports the directory and the LibTorch
//! version found there as `SVACLR_LIBTORCH_LIB` / `SVACLR_LIBTORCH_VERSION` for `svaclr info`.
//!
//! Without the feature it does nothing and reads no environment, so plain builds never rerun it.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=../../build/torch_rpath.rs");
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        println!(
            "cargo:warning=tch feature on but torch-sys reported no LibTorch directory; set LD_LIBRARY_PATH to run"
        );
        return;
    };
    let lib = Path::new(&lib);
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "macos" {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
    println!("cargo:rustc-env=SVACLR_LIBTORCH_LIB={}", lib.display());
    println!("cargo:rustc-env=SVACLR_LIBTORCH_VERSION={}", libtorch_version(lib));
}

/// The version of the LibTorch in `lib`: a PyPI wheel keeps it in `torch/version.py` (`__version__ = '2.9.0+cu128'`),
/// a LibTorch zip in `libtorch/build-version`.
fn libtorch_version(lib: &Path) -> String {
    let Some(parent) = lib.parent() else {
        return "unknown".into();
    };
    if let Ok(text) = std::fs::read_to_string(parent.join("version.py")) {
        for line in text.lines() {
            if let (true, Some((_, value))) = (line.starts_with("__version__"), line.split_once('=')) {
                return value.trim().trim_matches(['\'', '"']).to_string();
            }
        }
    }
    std::fs::read_to_string(parent.join("build-version"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
