//! `LossConfig`: parsing, validation and `LossConfig::loss`, the one place a loss is chosen.

use crate::common::*;

#[test]
fn config_defaults_serde_and_validation() {
    let c = LossConfig::default();
    assert_eq!(
        (c.kind, c.temperature, c.lambda_temperature, c.lambda_mode, c.detach_lambda),
        (LossKind::InfoNce, 0.07, 0.1, LambdaMode::All, true)
    );
    let json = serde_json::to_string(&c).expect("serialise");
    assert_eq!(
        json,
        r#"{"kind":"info_nce","temperature":0.07,"lambda_temperature":0.1,"lambda_mode":"all","detach_lambda":true}"#
    );
    let back: LossConfig = serde_json::from_str(&json).expect("round trip");
    assert_eq!(back, c);
    let soft: LossConfig = serde_json::from_str(
        r#"{"kind":"soft_info_nce","temperature":0.1,"lambda_temperature":0.5,"lambda_mode":"row","detach_lambda":false}"#,
    )
    .expect("parse");
    assert_eq!((soft.kind, soft.lambda_mode), (LossKind::SoftInfoNce, LambdaMode::Row));
    assert!(
        serde_json::from_str::<LossConfig>(&json.replace("\"detach_lambda\"", "\"typo\":1,\"detach_lambda\"")).is_err()
    );
    assert!(c.validate().is_ok());
    let bad = LossConfig { lambda_temperature: 0.0, ..c.clone() };
    assert!(matches!(bad.validate(), Err(LossError::InvalidTemperature { field: "lambda_temperature", .. })));
    let bad = LossConfig { temperature: f64::NAN, ..c };
    assert!(matches!(bad.validate(), Err(LossError::InvalidTemperature { field: "temperature", .. })));
}

#[test]
fn config_loss_uses_the_configured_kind() {
    let dev = Device::flex();
    let za = tensor(&(0..2 * 4 * 3).map(|i| (i as f32).sin()).collect::<Vec<_>>(), [2, 4, 3], &dev);
    let zv = tensor(&(0..2 * 4 * 3).map(|i| (i as f32 * 1.3).cos()).collect::<Vec<_>>(), [2, 4, 3], &dev);
    let ya = tensor(&(0..2 * 4 * 5).map(|i| (i as f32 * 0.7).sin()).collect::<Vec<_>>(), [2, 4, 5], &dev);
    let yv = tensor(&(0..2 * 4 * 5).map(|i| (i as f32 * 0.2).cos()).collect::<Vec<_>>(), [2, 4, 5], &dev);
    let cfg = LossConfig { kind: LossKind::SoftInfoNce, ..LossConfig::default() };
    let (loss, lambda) = cfg.loss(za.clone(), zv.clone(), Some((ya.clone(), yv.clone())), Anchors::All).expect("valid");
    let lambda = lambda.expect("soft loss returns lambda");
    let direct = soft_info_nce(
        za.clone(),
        zv.clone(),
        cross_affinity(ya, yv, 0.1, LambdaMode::All, true).expect("cross_affinity"),
        0.07,
        KernelPath::Auto,
    )
    .expect("soft_info_nce");
    assert_eq!(scalar(loss), scalar(direct));
    assert_eq!(lambda.dims(), [4, 2, 2]);
    assert!(matches!(cfg.loss(za.clone(), zv.clone(), None, Anchors::All), Err(LossError::MissingAffinity)));
    let (plain, none) = LossConfig::default().loss(za.clone(), zv.clone(), None, Anchors::All).expect("valid");
    assert!(none.is_none());
    assert_eq!(scalar(plain), scalar(info_nce(za, zv, 0.07, KernelPath::Auto).expect("info_nce")));
}

/// Gathered negatives: the shares of a batch (each rank's own clips as anchors, every clip as a negative) average to
/// the loss over the whole batch, and their gradients sum to `world` times its gradient.
#[test]
fn anchor_shares_average_to_the_whole_batch_loss() {
    let dev = device();
    let (v, n, d) = (2, 6, 3);
    let data = |k: f32, w: usize| (0..v * n * w).map(|i| (i as f32 * k).sin()).collect::<Vec<f32>>();
    let (za, zv, ya, yv) = (data(0.37, d), data(1.1, d), data(0.61, 5), data(0.23, 5));
    for kind in [LossKind::InfoNce, LossKind::SoftInfoNce] {
        let cfg = LossConfig { kind, ..LossConfig::default() };
        let run = |anchors: Anchors| {
            let a = tensor(&za, [v, n, d], &dev).require_grad();
            let b = tensor(&zv, [v, n, d], &dev).require_grad();
            let aff = Some((tensor(&ya, [v, n, 5], &dev), tensor(&yv, [v, n, 5], &dev)));
            let (loss, _) = cfg.loss(a.clone(), b.clone(), aff, anchors).expect("valid");
            let value = scalar(loss.clone());
            let g = loss.backward();
            (value, host(a.grad(&g).expect("grad")))
        };
        let (whole, g_whole) = run(Anchors::All);
        for world in [2, 3] {
            let shares: Vec<(f64, Vec<f32>)> = (0..world).map(|rank| run(Anchors::Share { rank, world })).collect();
            let mean = shares.iter().map(|s| s.0).sum::<f64>() / world as f64;
            assert!((mean - whole).abs() < 1e-5, "{kind:?} world {world}: mean of shares {mean} vs {whole}");
            for (i, g) in g_whole.iter().enumerate() {
                let sum: f32 = shares.iter().map(|s| s.1[i]).sum();
                assert!((sum - world as f32 * g).abs() < 1e-5, "{kind:?} world {world}: gradient {i}: {sum} vs {g}");
            }
            // One share alone is not the whole loss (so the weights really select anchors).
            assert!((shares[0].0 - whole).abs() > 1e-4, "{kind:?}: share 0 equals the whole loss");
        }
        let bad = cfg.loss(
            tensor(&za, [v, n, d], &dev),
            tensor(&zv, [v, n, d], &dev),
            None,
            Anchors::Share { rank: 0, world: 4 },
        );
        assert!(bad.is_err(), "6 clips do not split into 4 shares");
    }
}
