//! AWS adapters for hybrid-burst: the Auto Scaling group as the cloud capacity
//! ([`AsgScaler`], a `burst_ports::Scaler`) and S3 as the state store ([`S3Store`], a
//! `burst_ports::StateStore` with conditional writes), plus scheduled wake-ups as delayed SQS
//! messages ([`SqsWaker`], a `burst_ports::Waker`).
//!
//! A small hand-written client instead of the AWS SDK: two query-API actions and two S3 calls
//! need SigV4 ([`sigv4`], written from the public spec), reqwest and a little XML; the SDK
//! would add a few hundred crates to the Lambda build (numbers in `docs/aws.md`).

pub mod asg;
pub mod s3;
pub mod settings;
pub mod signed;
pub mod sigv4;
pub mod sqs;
pub mod xml;

pub use asg::{AsgConfig, AsgError, AsgScaler};
pub use s3::{S3Config, S3Store};
pub use settings::ConfigError;
pub use sigv4::Credentials;
pub use sqs::{SqsConfig, SqsError, SqsWaker};
