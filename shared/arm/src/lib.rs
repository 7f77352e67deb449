//! Azure Resource Manager: tokens and the VM Scale Set capacity client, plus a simulated ARM
