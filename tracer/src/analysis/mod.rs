//! The analysis engine (pure: typed events in, findings out).
