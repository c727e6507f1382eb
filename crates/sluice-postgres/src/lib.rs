//! sluice-postgres
