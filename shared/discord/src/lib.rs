//! Discord webhook client for incident messages, plus a simulated Discord
