//! Stand-ins for LibTorch's shared libraries, so that Valgrind runs the instruction-count benchmarks in seconds.
//!
//! CI builds the workspace once, with `tch`, so every test and bench executable links LibTorch, even one that never
//! calls it. Loading LibTorch under Valgrind costs 15-80 s per process (about 1.2 G instructions of static
//! initialisation, operator registration, and the symbols of several GB of CUDA libraries), against about a second
//! for the rest of a small benchmark; gungraun starts one process per benchmark. The loss benchmarks never call
//! LibTorch, so the gate runs them with `LD_LIBRARY_PATH` at stubs: one shared library per LibTorch library the
//! executable needs (same soname), the first defining every symbol the executable takes from LibTorch (functions
//! abort naming the symbol, data are zero bytes of the same size), the others empty. A benchmark that did reach
//! LibTorch would abort, loudly, rather than measure something else.
//!
//! Tools: `readelf` and `nm` (binutils), `ldd` (libc-bin) and `cc`, all on any machine that builds Rust on Debian.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util;

/// Whether a shared library belongs to LibTorch (libtorch.so, libtorch_cpu.so, libtorch_cuda.so, libc10.so, ...).
fn is_libtorch(soname: &str) -> bool {
    soname.starts_with("libtorch") || soname.starts_with("libc10")
}

/// A dynamic symbol a LibTorch library defines: a function, or data of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Symbol {
    Function,
    Data { size: u64 },
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot start {}", util::show(cmd)))?;
    if !out.status.success() {
        bail!("`{}` failed ({}): {}", util::show(cmd), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `NEEDED` entries of `readelf -d` output.
fn needed(readelf: &str) -> Vec<String> {
    readelf
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_string()))
        .collect()
}

/// `soname => path` of `ldd` output.
fn ldd_paths(ldd: &str) -> BTreeMap<String, PathBuf> {
    ldd.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(" => ")?;
            let path = rest.split_whitespace().next().filter(|p| p.starts_with('/'))?;
            Some((name.to_string(), PathBuf::from(path)))
        })
        .collect()
}

/// Defined dynamic symbols of `nm -D --defined-only -S` output (`ADDR [SIZE] TYPE NAME`).
fn defined_symbols(nm: &str) -> BTreeMap<String, Symbol> {
    let mut out = BTreeMap::new();
    for line in nm.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (size, kind, name) = match f.as_slice() {
            [_, size, kind, name] => (u64::from_str_radix(size, 16).unwrap_or(0), *kind, *name),
            [_, kind, name] => (0, *kind, *name),
            _ => continue,
        };
        let sym = match kind {
            "T" | "t" | "W" | "w" | "i" => Symbol::Function,
            "D" | "d" | "B" | "b" | "R" | "r" | "V" | "v" | "u" => Symbol::Data { size },
            _ => continue,
        };
        out.insert(name.to_string(), sym);
    }
    out
}

/// Undefined dynamic symbols of `nm -D --undefined-only` output (version suffixes removed; LibTorch has none).
fn undefined_symbols(nm: &str) -> Vec<String> {
    nm.lines().filter_map(|l| l.split_whitespace().last()).filter(|n| !n.contains('@')).map(str::to_string).collect()
}

/// The C source of the stub: every symbol under its own name (an asm label, so mangled C++ names are fine).
fn stub_source(symbols: &BTreeMap<String, Symbol>) -> String {
    let mut c = String::from(
        "#include <stdio.h>\n#include <stdlib.h>\n\
         static void svaclr_libtorch_stub(const char *name) {\n  \
         fprintf(stderr, \"LibTorch stub: %s was called; the instruction-count benchmarks must not use LibTorch \
         (xtask/src/libtorch_stub.rs)\\n\", name);\n  abort();\n}\n",
    );
    for (i, (name, sym)) in symbols.iter().enumerate() {
        match sym {
            Symbol::Function => c.push_str(&format!(
                "void svaclr_f{i}(void) __asm__(\"{name}\");\nvoid svaclr_f{i}(void) {{ svaclr_libtorch_stub(\"{name}\"); }}\n"
            )),
            Symbol::Data { size } => c.push_str(&format!(
                "char svaclr_d{i}[{}] __asm__(\"{name}\") __attribute__((aligned(64)));\n",
                (*size).max(8)
            )),
        }
    }
    c
}

fn compile(source: &Path, soname: &str, dir: &Path) -> Result<()> {
    util::run(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(dir.join(soname))
            .arg(source)
            .arg(format!("-Wl,-soname,{soname}")),
    )
}

/// Write the stubs for `exe` into `dir` and return `dir`, or `None` when `exe` links no LibTorch.
pub fn build(exe: &Path, dir: &Path) -> Result<Option<PathBuf>> {
    let libs: Vec<String> =
        needed(&output(Command::new("readelf").arg("-d").arg(exe))?).into_iter().filter(|n| is_libtorch(n)).collect();
    let Some(first) = libs.first() else {
        return Ok(None);
    };
    let paths = ldd_paths(&output(Command::new("ldd").arg(exe))?);
    let mut provided = BTreeMap::new();
    for lib in &libs {
        let path = paths.get(lib).with_context(|| format!("ldd does not find {lib}, which {} needs", exe.display()))?;
        provided.extend(defined_symbols(&output(Command::new("nm").args(["-D", "--defined-only", "-S"]).arg(path))?));
    }
    let wanted: BTreeMap<String, Symbol> =
        undefined_symbols(&output(Command::new("nm").args(["-D", "--undefined-only"]).arg(exe))?)
            .into_iter()
            .filter_map(|n| provided.get(&n).map(|s| (n, *s)))
            .collect();
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stub = dir.join("libtorch_stub.c");
    fs::write(&stub, stub_source(&wanted))?;
    let empty = dir.join("empty.c");
    fs::write(&empty, "int svaclr_libtorch_stub_empty;\n")?;
    compile(&stub, first, dir)?;
    for lib in &libs[1..] {
        compile(&empty, lib, dir)?;
    }
    eprintln!("icount: LibTorch stubbed ({} symbols, {}) in {}", wanted.len(), libs.join(", "), dir.display());
    Ok(Some(dir.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readelf_ldd_and_nm_outputs_parse() {
        let readelf = " 0x0000000000000001 (NEEDED)             Shared library: [libtorch_cpu.so]\n \
                       0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]\n \
                       0x000000000000001d (RUNPATH)            Library runpath: [/x/torch/lib]\n";
        let libs: Vec<String> = needed(readelf).into_iter().filter(|n| is_libtorch(n)).collect();
        assert_eq!(libs, ["libtorch_cpu.so"]);
        assert!(is_libtorch("libc10.so") && !is_libtorch("libc.so.6"));

        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibtorch_cpu.so => /x/torch/lib/libtorch_cpu.so (0x00007f)\n\
                   \tlibfoo.so => not found\n";
        let paths = ldd_paths(ldd);
        assert_eq!(paths.get("libtorch_cpu.so"), Some(&PathBuf::from("/x/torch/lib/libtorch_cpu.so")));
        assert!(!paths.contains_key("libfoo.so"));

        let nm = "0000000000001000 0000000000000010 T _ZN2at4_ops3add4callE\n\
                  0000000000002000 00000000000000b8 B _ZN3c1019UndefinedTensorImpl10_singletonE\n\
                  0000000000003000 W weak_fn\n0000000000000000 A VERSION_TAG\n";
        let defs = defined_symbols(nm);
        assert_eq!(defs.get("_ZN2at4_ops3add4callE"), Some(&Symbol::Function));
        assert_eq!(defs.get("_ZN3c1019UndefinedTensorImpl10_singletonE"), Some(&Symbol::Data { size: 0xb8 }));
        assert_eq!(defs.get("weak_fn"), Some(&Symbol::Function));
        assert!(!defs.contains_key("VERSION_TAG"));

        let undef = "                 U _ZN2at4_ops3add4callE\n                 U memcpy@GLIBC_2.14\n                 w __gmon_start__\n";
        assert_eq!(undefined_symbols(undef), ["_ZN2at4_ops3add4callE", "__gmon_start__"]);
    }

    #[test]
    fn the_stub_defines_functions_that_abort_and_sized_data() {
        let syms = BTreeMap::from([
            ("_Zf".to_string(), Symbol::Function),
            ("_Zd".to_string(), Symbol::Data { size: 184 }),
            ("_Ze".to_string(), Symbol::Data { size: 0 }),
        ]);
        let c = stub_source(&syms);
        assert!(c.contains("__asm__(\"_Zf\")") && c.contains("svaclr_libtorch_stub(\"_Zf\")"), "{c}");
        assert!(c.contains("[184] __asm__(\"_Zd\")") && c.contains("[8] __asm__(\"_Ze\")"), "{c}");
        assert!(c.contains("abort();"));
    }
}
