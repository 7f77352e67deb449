//! The hybrid-burst function bodies and their Azure Functions custom-handler wrapper (burst-handler)
