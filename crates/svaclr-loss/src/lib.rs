//! svaclr-loss: InfoNCE and SoftInfoNCE over co-augmented audio-visual views.
