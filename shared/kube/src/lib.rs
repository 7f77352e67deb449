//! Kubernetes for hybrid-burst: the home cluster probe and the cloud cluster migrator.
//!
//! - [`HomeClusterProbe`] ([`burst_ports::HomeProbe`]): `GET /readyz` and the node list of the
//!   home cluster, classified into [`burst_core::ApiProbe`] within a short timeout.
//! - [`CloudClusterMigrator`] ([`burst_ports::Migrator`]): scales the cloud cluster's
//!   Deployments and StatefulSets labelled [`TIER_LABEL`]`=<tier>` to their
//!   [`CLOUD_REPLICAS_ANNOTATION`] (to the cloud) or to 0 (back home), through the `scale`
//!   subresource.
//!
//! Nothing here decides anything: the adapters report what they saw and did.

mod client;
pub mod config;
pub mod migrate;
pub mod probe;

pub use config::{CloudMigratorConfig, ClusterConnection, ConfigError, HomeProbeConfig};
pub use migrate::{
    CLOUD_REPLICAS_ANNOTATION, CloudClusterMigrator, MigrationReport, TIER_LABEL, WorkloadKind,
    WorkloadRef, cloud_replicas,
};
pub use probe::{HomeClusterProbe, node_ready};
