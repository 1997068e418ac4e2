//! Policy plugins (being written).
