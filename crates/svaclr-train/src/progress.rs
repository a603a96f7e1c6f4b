//! Progress bars on stderr (hidden when asked, or when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A step progress bar with ETA; a hidden one when `show` is false.
pub fn bar(show: bool, total: u64, position: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if show { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps, ETA {eta} | {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_position(position);
    bar
}
