//! What the CPU offers the hand-vectorised kernels (`conv::direct`, `batch_norm::kernel`), detected once at run time.

/// Whether this CPU has AVX2 and FMA (x86-64 only; every other target runs the portable paths).
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
