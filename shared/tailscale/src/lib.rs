//! Tailscale: webhook signature verification, the devices API client, plus a simulated devices API
