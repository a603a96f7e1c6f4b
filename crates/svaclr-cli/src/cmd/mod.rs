//! One module per subcommand.

pub mod export;
pub mod finetune;
pub mod forward;
pub mod import;
pub mod info;
pub mod prepare;
pub mod pretrain;
pub mod reproduce;
pub mod retrieve;
pub mod size_table;
pub mod synth;
