//! The `svaclr` command-line tool: thin subcommands over the svaclr libraries.
//!
//! Each subcommand lives in `cmd/<name>.rs` with a clap `Args` struct and a `run(args) -> anyhow::Result<()>`.
//! Errors end the process with a one-line cause on stderr and exit code 1.

mod cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "svaclr", version, about = "SvaCLR: speed co-augmentation for audio-visual pre-training")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Version, backends compiled in, devices found, thread count.
    Info(cmd::info::Args),
    /// Eval-mode forward pass of r2plus1d_18 / r3d_18 / audio_resnet9 on a .safetensors tensor "input".
    Forward(cmd::forward::Args),
    /// Convert a torchvision checkpoint (.pth/.safetensors) into our format (.bpk).
    Import(cmd::import::Args),
    /// Write weights as a torchvision state_dict (.safetensors) that PyTorch loads with strict=True.
    Export(cmd::export::Args),
    /// Index a real dataset (manifest with splits, durations, audio extracted to wav), reporting unusable files.
    Prepare(cmd::prepare::Args),
    /// Write the SynthAV benchmark: videos, wavs, manifests and synthav.json (optionally a preview PNG).
    Synth(cmd::synth::Args),
    /// Pre-train the video and audio encoders (InfoNCE or SoftInfoNCE, speed co-augmentation per config).
    Pretrain(cmd::pretrain::Args),
    /// Run a paper table's rows (pre-training, evaluation) and write TABLE.{md,json,png} (see `cargo xtask reproduce`).
    Reproduce(cmd::reproduce::Args),
    /// Seeds against steps in a time budget, from finished tables of one preset (how a preset is sized).
    SizeTable(cmd::size_table::Args),
    /// Action recognition from a pre-trained encoder: fine-tuning or linear probe (per config), multi-view testing.
    Finetune(cmd::finetune::Args),
    /// Audio-visual retrieval R@K (video->audio, audio->video; instance and class level) on a test split.
    Retrieve(cmd::retrieve::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(a) => cmd::info::run(a),
        Command::Forward(a) => cmd::forward::run(a),
        Command::Import(a) => cmd::import::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Prepare(a) => cmd::prepare::run(a),
        Command::Synth(a) => cmd::synth::run(a),
        Command::Pretrain(a) => cmd::pretrain::run(a),
        Command::Reproduce(a) => cmd::reproduce::run(a),
        Command::SizeTable(a) => cmd::size_table::run(a),
        Command::Finetune(a) => cmd::finetune::run(a),
        Command::Retrieve(a) => cmd::retrieve::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// One line: the chain of causes joined with ": ", never a backtrace. Library errors already include their cause in
/// their own message, so a cause whose text is already there is not repeated.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.replace('\n', " ")
}
