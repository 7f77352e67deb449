//! `ArmConfig::from_settings`: what is required, defaults, credential choice, and errors that
//! name the setting without echoing secrets.
#![allow(clippy::unwrap_used)]

mod support;

use burst_arm::{ArmConfig, ArmScaleSet, ConfigError, Credential};
use std::collections::HashMap;
use std::time::Duration;

const ID: &str = "/subscriptions/00000000-1111-2222-3333-444455556666/resourceGroups/rg-burst/providers/Microsoft.Compute/virtualMachineScaleSets/vmss-burst";

fn read(pairs: &[(&str, &str)]) -> Result<Option<ArmConfig>, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ArmConfig::from_settings(&|k| map.get(k).cloned())
}

const MI: [(&str, &str); 2] = [
    ("IDENTITY_ENDPOINT", "http://127.0.0.1:41234/msi/token"),
    ("IDENTITY_HEADER", "header-secret-value"),
];
const SP: [(&str, &str); 3] = [
    ("AZURE_TENANT_ID", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"),
    ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
    ("AZURE_CLIENT_SECRET", "client-secret-value"),
];

fn with(
    base: &[(&'static str, &'static str)],
    more: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    base.iter().chain(more).copied().collect()
}

#[test]
fn not_configured_without_a_scale_set() {
    assert_eq!(read(&[]), Ok(None));
    assert_eq!(read(&MI), Ok(None));
    // Empty counts as absent (app settings are often left blank).
    assert_eq!(
        read(&with(&MI, &[("BURST_ARM_SCALE_SET_ID", "  ")])),
        Ok(None)
    );
}

#[test]
fn defaults_with_managed_identity() {
    let cfg = read(&with(&MI, &[("BURST_ARM_SCALE_SET_ID", ID)]))
        .unwrap()
        .unwrap();
    assert_eq!(cfg.scale_set.to_string(), ID);
    assert_eq!(cfg.endpoint.as_str(), "https://management.azure.com/");
    assert_eq!(cfg.api_version, "2025-11-01");
    assert_eq!(cfg.timeout, Duration::from_millis(10_000));
    assert_eq!(
        cfg.credential,
        Credential::ManagedIdentity { client_id: None }
    );
    assert!(!format!("{cfg:?}").contains("header-secret-value"));
}

#[test]
fn overrides() {
    let cfg = read(&with(
        &MI,
        &[
            ("BURST_ARM_SCALE_SET_ID", ID),
            ("BURST_ARM_ENDPOINT", "http://127.0.0.1:9999"),
            ("BURST_ARM_API_VERSION", "2024-11-01"),
            ("BURST_ARM_TIMEOUT_MS", "2500"),
            ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
        ],
    ))
    .unwrap()
    .unwrap();
    assert_eq!(cfg.endpoint.as_str(), "http://127.0.0.1:9999/");
    assert_eq!(cfg.api_version, "2024-11-01");
    assert_eq!(cfg.timeout, Duration::from_millis(2500));
    let Credential::ManagedIdentity { client_id, .. } = &cfg.credential else {
        panic!("expected managed identity");
    };
    assert_eq!(
        client_id.as_deref(),
        Some("11111111-2222-3333-4444-555555555555")
    );
}

#[test]
fn invalid_resource_ids_name_the_setting() {
    for bad in [
        "vmss-burst",
        "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/v",
        "/subscriptions/00000000-1111-2222-3333-444455556666/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/v",
    ] {
        let err = read(&with(&MI, &[("BURST_ARM_SCALE_SET_ID", bad)])).unwrap_err();
        assert_eq!(err.setting, "BURST_ARM_SCALE_SET_ID", "{bad}");
    }
}

#[test]
fn invalid_values_name_the_setting() {
    let cases = [
        ("BURST_ARM_ENDPOINT", "management.azure.com"),
        ("BURST_ARM_ENDPOINT", "ftp://x"),
        ("BURST_ARM_ENDPOINT", "https://x/?a=b"),
        ("BURST_ARM_API_VERSION", "2025-11-01&x=y"),
        ("BURST_ARM_TIMEOUT_MS", "0"),
        ("BURST_ARM_TIMEOUT_MS", "ten"),
        ("BURST_ARM_TIMEOUT_MS", "999999"),
        ("BURST_ARM_CREDENTIAL", "magic"),
        ("AZURE_CLIENT_ID", "x/../y"),
    ];
    for (name, value) in cases {
        let settings = with(&MI, &[("BURST_ARM_SCALE_SET_ID", ID), (name, value)]);
        let err = read(&settings).unwrap_err();
        assert_eq!(err.setting, name, "{value}");
    }
    let settings = with(
        &[("BURST_ARM_SCALE_SET_ID", ID), ("IDENTITY_HEADER", "h")],
        &[("IDENTITY_ENDPOINT", "not a url")],
    );
    assert_eq!(read(&settings).unwrap_err().setting, "IDENTITY_ENDPOINT");
    // The timeout error says the range and what was given.
    let err = read(&with(
        &MI,
        &[
            ("BURST_ARM_SCALE_SET_ID", ID),
            ("BURST_ARM_TIMEOUT_MS", "ten"),
        ],
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "BURST_ARM_TIMEOUT_MS: expected milliseconds from 1 to 120000, got \"ten\""
    );
}

#[test]
fn no_credential_is_an_error_naming_the_settings() {
    let err = read(&[("BURST_ARM_SCALE_SET_ID", ID)]).unwrap_err();
    let text = err.to_string();
    for name in [
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
    ] {
        assert!(text.contains(name), "{text}");
    }
    // Half a managed identity: the missing half is named.
    let err = read(&[
        ("BURST_ARM_SCALE_SET_ID", ID),
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token"),
    ])
    .unwrap_err();
    assert_eq!(err.setting, "IDENTITY_HEADER");
    assert!(err.problem.starts_with("not set"), "{err}");
    // Half a service principal.
    let err = read(&[
        ("BURST_ARM_SCALE_SET_ID", ID),
        ("AZURE_TENANT_ID", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"),
        ("AZURE_CLIENT_SECRET", "client-secret-value"),
    ])
    .unwrap_err();
    assert_eq!(err.setting, "AZURE_CLIENT_ID");
    assert!(!err.to_string().contains("client-secret-value"));
}

#[test]
fn service_principal() {
    let cfg = read(&with(&SP, &[("BURST_ARM_SCALE_SET_ID", ID)]))
        .unwrap()
        .unwrap();
    match &cfg.credential {
        Credential::ServicePrincipal {
            authority,
            tenant_id,
            client_id,
            client_secret,
        } => {
            assert_eq!(authority.as_str(), "https://login.microsoftonline.com/");
            assert_eq!(tenant_id, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
            assert_eq!(client_id, "11111111-2222-3333-4444-555555555555");
            assert_eq!(client_secret.expose(), "client-secret-value");
        }
        other => panic!("expected a service principal, got {other:?}"),
    }
    assert!(!format!("{cfg:?}").contains("client-secret-value"));
    let cfg = read(&with(
        &SP,
        &[
            ("BURST_ARM_SCALE_SET_ID", ID),
            ("BURST_AZURE_AUTHORITY", "https://login.example.test"),
        ],
    ))
    .unwrap()
    .unwrap();
    let Credential::ServicePrincipal { authority, .. } = &cfg.credential else {
        panic!("expected a service principal");
    };
    assert_eq!(authority.as_str(), "https://login.example.test/");
    // The secret travels to the authority: plain http is refused.
    let err = read(&with(
        &SP,
        &[
            ("BURST_ARM_SCALE_SET_ID", ID),
            ("BURST_AZURE_AUTHORITY", "http://127.0.0.1:5555"),
        ],
    ))
    .unwrap_err();
    assert_eq!(err.setting, "BURST_AZURE_AUTHORITY");
    // Both credentials build without a request.
    assert!(cfg.credential.build().is_ok());
    assert!(
        Credential::ManagedIdentity { client_id: None }
            .build()
            .is_ok()
    );
}

#[test]
fn both_credentials_managed_identity_wins_unless_told() {
    let both: Vec<_> = MI
        .iter()
        .chain(SP.iter())
        .copied()
        .chain([("BURST_ARM_SCALE_SET_ID", ID)])
        .collect();
    let cfg = read(&both).unwrap().unwrap();
    let Credential::ManagedIdentity { client_id, .. } = &cfg.credential else {
        panic!("managed identity takes precedence");
    };
    // AZURE_CLIENT_ID then selects the user-assigned identity.
    assert_eq!(
        client_id.as_deref(),
        Some("11111111-2222-3333-4444-555555555555")
    );
    let mut forced = both.clone();
    forced.push(("BURST_ARM_CREDENTIAL", "service_principal"));
    assert!(matches!(
        read(&forced).unwrap().unwrap().credential,
        Credential::ServicePrincipal { .. }
    ));
    // Half a managed identity next to a complete service principal: the principal is used.
    let half: Vec<_> = SP
        .iter()
        .copied()
        .chain([
            ("BURST_ARM_SCALE_SET_ID", ID),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token"),
        ])
        .collect();
    assert!(matches!(
        read(&half).unwrap().unwrap().credential,
        Credential::ServicePrincipal { .. }
    ));
    // Forcing the managed identity without its settings names what is missing.
    let mut forced_mi: Vec<_> = SP
        .iter()
        .copied()
        .chain([("BURST_ARM_SCALE_SET_ID", ID)])
        .collect();
    forced_mi.push(("BURST_ARM_CREDENTIAL", "managed_identity"));
    assert_eq!(read(&forced_mi).unwrap_err().setting, "IDENTITY_ENDPOINT");
}

#[test]
fn the_sim_settings_configure_the_client() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sim = burst_arm_sim::start(burst_arm_sim::SimConfig {
            initial_capacity: 2,
            boot_time: Duration::ZERO,
            ..Default::default()
        })
        .await
        .unwrap();
        let settings: HashMap<&str, String> = sim.settings().into_iter().collect();
        let config = ArmConfig::from_settings(&|k| settings.get(k).cloned())
            .unwrap()
            .unwrap();
        assert_eq!(
            config.credential,
            Credential::ManagedIdentity { client_id: None }
        );
        let arm = ArmScaleSet::new(config, support::SimIdentity::for_sim(&sim)).unwrap();
        use burst_ports::Scaler;
        assert_eq!(
            arm.observe().await,
            burst_core::ScaleSetProbe::Seen {
                capacity: 2,
                running: 2
            }
        );
    });
}
