//! The one error type of svaclr-tables. Every variant prints as one line and names the file or step concerned.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong between a table file and its report.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    /// Reading or writing a file or folder failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's cause.
        cause: std::io::Error,
    },
    /// A table file (or a config it names) does not parse or does not validate (serde's message names the key,
    /// with line and column).
    #[error("{path}: {message}")]
    Spec {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A file a step wrote (results.json, summary.json) is not what this version reads.
    #[error("{path}: {message}")]
    Output {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The command line asks for something the plan cannot do.
    #[error("{0}")]
    Request(String),
    /// Prepared datasets the plan reads are missing or incomplete (each was printed above with the `svaclr prepare`
    /// command that writes it); nothing was run.
    #[error(
        "{count} dataset(s) missing or incomplete, nothing was run: run the `svaclr prepare` command printed for each, \
         then this command again (docs/reproduction.md)"
    )]
    NotPrepared {
        /// How many.
        count: usize,
    },
    /// A step's process could not be started.
    #[error("cannot start: {command}: {cause}")]
    Start {
        /// The command line.
        command: String,
        /// The operating system's cause.
        cause: std::io::Error,
    },
    /// A step's process ended with an error (its own message is on stderr above).
    #[error("{what} failed ({status}); rerun the same command to continue where it stopped")]
    StepFailed {
        /// The step.
        what: String,
        /// How its process ended.
        status: ExitStatus,
    },
    /// Drawing a figure failed.
    #[error("{path}: cannot draw figure: {message}")]
    Plot {
        /// The PNG file.
        path: PathBuf,
        /// The plotting library's message.
        message: String,
    },
    /// A pre-training config does not load (it names the file).
    #[error(transparent)]
    Train(#[from] svaclr_train::TrainError),
    /// A downstream config does not load, or Fig. 3 failed (it names the file).
    #[error(transparent)]
    Eval(#[from] svaclr_eval::EvalError),
    /// `--device` names no usable device.
    #[error(transparent)]
    Device(#[from] svaclr_train::DeviceError),
}

impl TablesError {
    /// An I/O error for `path`, for `map_err`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TablesError {
        let path = path.into();
        move |cause| TablesError::Io { path, cause }
    }
}
