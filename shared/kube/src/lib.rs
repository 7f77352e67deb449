//! Kubernetes: the home cluster probe and the cloud cluster migrator, plus a simulated API server
