//! Shared helpers for spindel tests.
