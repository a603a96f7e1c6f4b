//! Integration tests of svaclr-models: parameter counts against torchvision, shapes for every preset, the
//! cross-affinity width rule, weight import/export round trips, and a hand-computed conv/BN case.
//!
//! Forward passes of full-size networks are slow in the dev profile; they run only with `SVACLR_HEAVY_TESTS=1`.
//! PyTorch parity (torchvision's own outputs) is checked by `cargo xtask parity`.

mod common;
mod kernels;
mod shapes;
mod weights;
