//! svaclr-models: the networks of SvaCLR, written on Burn with torchvision's parameter names.
