//! State documents with compare-and-swap: a local file store and Azure Blob Storage
