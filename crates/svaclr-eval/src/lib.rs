//! svaclr-eval: the downstream half of every table.
//!
//! Fine-tuning and linear probing for action recognition (multi-clip, multi-crop testing), instance- and
//! class-level audio-visual retrieval (R@K), and result tables in JSON and Markdown.
