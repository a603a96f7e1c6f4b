//! Data-parallel pre-training over MPI (docs/distributed.md), run as a user runs it: `mpirun -np 2 svaclr pretrain`.
//!
//! The tests that launch mpirun need the `mpi` feature and Open MPI (`cargo xtask setup --mpi`); `cargo xtask test`
//! runs them. Each rank is limited to one compute thread (RAYON_NUM_THREADS=1) so that two ranks fit two cores.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
#[cfg(feature = "mpi")]
use common::losses;

fn svaclr_bin() -> &'static str {
    env!("CARGO_BIN_EXE_svaclr")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
/// A small SynthAV dataset (64 pre-training clips), generated once for all tests; returns its manifest.
fn synth() -> PathBuf {
    static DATA: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DATA.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let st = Command::new(svaclr_bin())
            .args(["synth", "--preset", "small", "--clips", "64", "--seed", "5", "--out"])
            .arg(tmp.path())
            .stderr(Stdio::null())
            .status()
            .expect("run svaclr synth");
        assert!(st.success());
        tmp
    });
    dir.path().join("pretrain.jsonl")
}

#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
/// configs/pretrain/smoke.json with `edit` applied, written into `dir`.
fn smoke_config(dir: &Path, manifest: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let text = std::fs::read_to_string(workspace().join("configs/pretrain/smoke.json")).expect("smoke config");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("smoke config is JSON");
    v["manifest"] = manifest.to_string_lossy().into_owned().into();
    edit(&mut v);
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&v).expect("json")).expect("write config");
    path
}

#[cfg(not(feature = "mpi"))]
#[test]
fn launched_as_an_mpi_rank_without_the_feature_is_a_one_line_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = Command::new(svaclr_bin())
        .args(["pretrain", "--config"])
        .arg(workspace().join("configs/pretrain/smoke.json"))
        .arg("--out")
        .arg(tmp.path().join("run"))
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .output()
        .expect("run svaclr");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("`mpi` feature") && err.contains("OMPI_COMM_WORLD_SIZE=2"), "{err}");
    assert!(!tmp.path().join("run").exists(), "nothing may be written before the error");
}

#[cfg(feature = "mpi")]
mod with_mpi {
    use std::sync::{Mutex, MutexGuard};
    use std::time::{Duration, Instant};

    use super::*;

    /// One mpirun job at a time: two ranks already fill the two cores CI has.
    fn one_job_at_a_time() -> MutexGuard<'static, ()> {
        static JOBS: Mutex<()> = Mutex::new(());
        JOBS.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `mpirun --oversubscribe -np N svaclr pretrain ARGS`, allowed to run as root (containers, CI).
    fn mpirun(np: usize) -> Command {
        let mut c = Command::new("mpirun");
        c.args(["--oversubscribe", "-np", &np.to_string(), svaclr_bin(), "pretrain", "--quiet"])
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            // Containers often forbid the cross-memory attach of Open MPI's shared-memory transport.
            .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
            .env("RAYON_NUM_THREADS", "1");
        c
    }

    /// Run to completion (at most `limit`), panicking with the output on failure; returns stderr.
    fn run_ok(mut c: Command, limit: Duration) -> String {
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn (is mpirun installed?)");
        let t0 = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if t0.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no result within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("output");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "failed: {err}\n{}", String::from_utf8_lossy(&out.stdout));
        err
    }

    /// The "rank r of P: final weights H" lines, in rank order.
    fn rank_hashes(stderr: &str, np: usize) -> Vec<String> {
        (0..np)
            .map(|r| {
                let tag = format!("rank {r} of {np}: final weights ");
                stderr
                    .lines()
                    .find_map(|l| l.split_once(&tag).map(|(_, h)| h.trim().to_string()))
                    .unwrap_or_else(|| panic!("no weights line for rank {r} in: {stderr}"))
            })
            .collect()
    }

    fn summary_hash(run: &Path) -> String {
        let text = std::fs::read_to_string(run.join("summary.json")).expect("summary.json");
        let v: serde_json::Value = serde_json::from_str(&text).expect("summary is JSON");
        v["weights_hash"].as_str().unwrap_or_default().to_string()
    }

    const LIMIT: Duration = Duration::from_secs(600);

    #[test]
    fn two_ranks_keep_identical_weights_and_resume() {
        let _job = one_job_at_a_time();
        let tmp = tempfile::tempdir().expect("tempdir");
        let manifest = synth();
        // 4 steps of the smoke config (global batch 32 = 2 x 16), checked and checkpointed every 2 steps.
        let cfg = smoke_config(tmp.path(), &manifest, |v| v["run"]["max_steps"] = 4.into());
        let full = tmp.path().join("full");
        let err = run_ok(
            {
                let mut c = mpirun(2);
                c.arg("--config").arg(&cfg).arg("--out").arg(&full);
                c
            },
            LIMIT,
        );
        let hashes = rank_hashes(&err, 2);
        assert_eq!(hashes[0], hashes[1], "ranks ended with different weights");
        assert_eq!(summary_hash(&full), hashes[0]);
        // Rank 0 alone wrote the log: one line per step.
        let curve = losses(&full);
        assert_eq!(curve.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2, 3, 4]);

        // Stop after 2 steps, then resume to 4: the same curve and the same weights.
        let cut = tmp.path().join("cut");
        let part = |resume: bool, steps: &str| {
            let mut c = mpirun(2);
            c.arg("--config").arg(&cfg).arg("--out").arg(&cut).args(["--max-steps", steps]);
            if resume {
                c.arg("--resume");
            }
            c
        };
        run_ok(part(false, "2"), LIMIT);
        assert_eq!(losses(&cut).len(), 2);
        let err = run_ok(part(true, "4"), LIMIT);
        assert_eq!(losses(&cut), curve, "a resumed distributed run must continue the same curve");
        // (The final weights are not compared with the uninterrupted run's: a resumed single-process run does not
        // reproduce them bit for bit either, only its losses.)
        let resumed = rank_hashes(&err, 2);
        assert_eq!(resumed[0], resumed[1], "ranks of the resumed run ended with different weights");
    }

    #[test]
    fn two_ranks_with_half_batches_give_the_single_process_losses() {
        let _job = one_job_at_a_time();
        // With BatchNorm frozen each clip's embedding depends on that clip alone, so gathered negatives and averaged
        // gradients must reproduce one process with the whole batch: same per-step losses up to float rounding.
        // SoftInfoNCE with gradients through lambda exercises every gathered tensor; the 2-rank run also splits its
        // half-batch into 2 micro-batches (gradient caching inside each rank).
        let tmp = tempfile::tempdir().expect("tempdir");
        let manifest = synth();
        let edit = |micro: usize| {
            move |v: &mut serde_json::Value| {
                v["model"]["norm"] = "frozen".into();
                v["loss"]["detach_lambda"] = false.into();
                v["run"]["batch_size"] = 16.into();
                v["run"]["micro_batches"] = micro.into();
                v["run"]["max_steps"] = 4.into();
                // A large constant learning rate, so that a wrong gradient shows in the next step's loss.
                for k in ["lr_start", "lr_peak", "lr_end"] {
                    v["schedule"][k] = 1.0.into();
                }
            }
        };
        let one_dir = tmp.path().join("one");
        std::fs::create_dir_all(&one_dir).expect("mkdir");
        let one_cfg = smoke_config(&one_dir, &manifest, edit(1));
        let one = tmp.path().join("run-1");
        let mut c = Command::new(svaclr_bin());
        c.args(["pretrain", "--quiet", "--config"]).arg(&one_cfg).arg("--out").arg(&one).env("RAYON_NUM_THREADS", "1");
        run_ok(c, LIMIT);

        let two_dir = tmp.path().join("two");
        std::fs::create_dir_all(&two_dir).expect("mkdir");
        let two_cfg = smoke_config(&two_dir, &manifest, edit(2));
        let two = tmp.path().join("run-2");
        let mut c = mpirun(2);
        c.arg("--config").arg(&two_cfg).arg("--out").arg(&two);
        run_ok(c, LIMIT);

        let (a, b) = (losses(&one), losses(&two));
        assert_eq!(a.len(), 4);
        assert_eq!(a.iter().map(|x| x.0).collect::<Vec<_>>(), b.iter().map(|x| x.0).collect::<Vec<_>>());
        for ((step, la), (_, lb)) in a.iter().zip(&b) {
            let tol = 2e-5 * la.abs().max(1.0);
            assert!((la - lb).abs() <= tol, "step {step}: 1 process {la} vs 2 processes {lb}\n{a:?}\n{b:?}");
        }
    }

    /// Children of `parent` whose environment says they are MPI rank `rank`.
    fn rank_pid(parent: u32, rank: usize) -> Option<u32> {
        let want = format!("OMPI_COMM_WORLD_RANK={rank}");
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Field 4 (after the ")" that ends the command name) is the parent pid.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if ppid != Some(parent) {
                continue;
            }
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()) {
                return Some(pid);
            }
        }
        None
    }

    #[test]
    fn killing_one_rank_ends_the_job_with_a_message_naming_it() {
        let _job = one_job_at_a_time();
        let tmp = tempfile::tempdir().expect("tempdir");
        let manifest = synth();
        let cfg = smoke_config(tmp.path(), &manifest, |v| {
            // Far longer than the test waits: 2 steps per epoch x 250 epochs.
            v["schedule"]["epochs"] = 250.into();
            v["run"]["max_steps"] = 500.into();
        });
        let run = tmp.path().join("run");
        let mut c = mpirun(2);
        c.arg("--config").arg(&cfg).arg("--out").arg(&run);
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn mpirun");
        // Wait until training runs (rank 0 logged a step), then kill rank 1.
        let t0 = Instant::now();
        while losses(&run).is_empty() {
            assert!(child.try_wait().expect("wait").is_none(), "the job ended before it could be killed");
            if t0.elapsed() > LIMIT {
                let _ = child.kill();
                panic!("no step logged within {LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let victim = rank_pid(child.id(), 1).expect("rank 1's process");
        let st = Command::new("kill").args(["-9", &victim.to_string()]).status().expect("kill");
        assert!(st.success());
        // The job must end on its own within a bounded time.
        let killed_at = Instant::now();
        let bound = Duration::from_secs(60);
        while child.try_wait().expect("wait").is_none() {
            if killed_at.elapsed() > bound {
                let _ = child.kill();
                let _ = child.wait();
                if let Some(p) = rank_pid(child.id(), 0) {
                    let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
                }
                panic!("the job still ran {bound:?} after rank 1 was killed");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("output");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("rank 1") && err.contains("signal 9"), "the message must name the rank: {err}");
        assert!(losses(&run).len() < 500);
    }
}
