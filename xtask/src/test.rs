//! `cargo xtask test`: the command CI runs. Set-up, the workspace tests, the CUDA type-check, the parity checks.

use std::process::Command;

use anyhow::Result;

use crate::{setup, util};

pub fn run(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        anyhow::bail!("test: unknown option '{a}'");
    }
    setup::run(&[])?;
    // The workspace tests (xtask's own tidy tests included). Fixtures are in-project unless overridden.
    util::run(util::cargo().args(["test", "--workspace"]))?;
    // Keep the CUDA path compiling: burn's cuda backend cannot be linked here (its build downloads LLVM), but with
    // DOCS_RS set its build scripts skip the download and everything type-checks.
    util::run(util::cargo().env("DOCS_RS", "1").args(["check", "-p", "svaclr-cli", "--features", "cuda"]))?;
    Ok(())
}
