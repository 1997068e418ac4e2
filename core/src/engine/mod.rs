//! The sans-IO election and membership protocol (under construction).
